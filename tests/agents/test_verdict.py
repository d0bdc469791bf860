"""Why tests fail, read from real pytest runs, and the loop's two rules: the ratchet and tests-plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llama_orch.agents import judge_new_tests, judge_tests, read_junit
from llama_orch.agents._verdict import TestFailure, right_reason

TESTS = {
    "tests/test_import.py": (
        "import pytest\nfrom pk.mod import f\n\n@pytest.mark.req('X-0001')\ndef test_f():\n    assert f(1) == 2\n"
    ),
    "tests/test_attr.py": "import pk\n\ndef test_attr():\n    assert pk.g(1) == 3\n",
    "tests/test_assert.py": (
        "class TestCase:\n    def test_eq(self):\n        assert 1 == 2\n\n    def test_ok(self):\n        pass\n"
    ),
    "tests/test_name.py": "def test_name():\n    undefined_thing()\n",
    "tests/test_syntax.py": "def test_s(:\n    pass\n",
    "tests/test_type.py": "def test_type():\n    len(3)\n",
    "tests/test_raise.py": "def test_raise():\n    raise AssertionError('explicit')\n",
}


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[TestFailure], int]:
    root = tmp_path_factory.mktemp("verdict")
    (root / "src" / "pk").mkdir(parents=True)
    (root / "src" / "pk" / "__init__.py").write_text("")
    for path, text in TESTS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    env = {**os.environ, "PYTHONPATH": "src", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
         "--junitxml=out.xml", "tests"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return root, read_junit((root / "out.xml").read_bytes(), root), done.returncode


def by_node(found: list[TestFailure]) -> dict[str, TestFailure]:
    return {f.node: f for f in found}


def test_failures_are_read_with_their_reasons(failures: tuple[Path, list[TestFailure], int]) -> None:
    _, found, code = failures
    assert code == 1
    nodes = by_node(found)
    assert set(nodes) == {
        "tests/test_import.py", "tests/test_syntax.py", "tests/test_attr.py::test_attr",
        "tests/test_assert.py::TestCase::test_eq", "tests/test_name.py::test_name", "tests/test_type.py::test_type",
        "tests/test_raise.py::test_raise",
    }  # fmt: skip
    imp = nodes["tests/test_import.py"]
    assert imp.collection and imp.exception == "ModuleNotFoundError" and "pk.mod" in imp.message
    assert nodes["tests/test_syntax.py"].exception == "SyntaxError" and nodes["tests/test_syntax.py"].collection
    assert nodes["tests/test_attr.py::test_attr"].exception == "AttributeError"
    assert nodes["tests/test_assert.py::TestCase::test_eq"].exception == "AssertionError"
    assert nodes["tests/test_raise.py::test_raise"].exception == "AssertionError"
    assert nodes["tests/test_name.py::test_name"].exception == "NameError"
    assert nodes["tests/test_type.py::test_type"].exception == "TypeError"


@pytest.mark.parametrize(
    ("node", "targets", "ok"),
    [
        ("tests/test_import.py", ["f", "pk.mod", "mod"], True),
        ("tests/test_import.py", ["slugify", "strkit.slug"], False),  # a missing name, but not the one wanted
        ("tests/test_attr.py::test_attr", ["g"], True),
        ("tests/test_assert.py::TestCase::test_eq", ["anything"], True),
        ("tests/test_name.py::test_name", ["undefined_thing"], True),
        ("tests/test_syntax.py", ["f"], False),
        ("tests/test_type.py::test_type", ["len"], False),
        ("tests/test_import.py", [], True),  # no target known: any missing name will do
    ],
)
def test_right_reason(failures: tuple[Path, list[TestFailure], int], node: str, targets: list[str], ok: bool) -> None:
    assert right_reason(by_node(failures[1])[node], targets)[0] is ok


def test_the_ratchet(failures: tuple[Path, list[TestFailure], int]) -> None:
    _, found, _ = failures
    only_import = [f for f in found if f.node == "tests/test_import.py"]
    citations = {"tests/test_import.py::test_f": {"X-0001"}}
    assert judge_tests(only_import, citations, {"X-0001"}).ok
    closed = judge_tests(only_import, citations, set())
    assert not closed.ok and "cite no open requirement" in closed.reason
    assert not judge_tests(found, citations, {"X-0001"}).ok  # the others cite nothing: regressions
    assert judge_tests([], citations, set()).reason == "every test passes"


def test_the_tests_plan_rule(failures: tuple[Path, list[TestFailure], int]) -> None:
    _, found, code = failures

    def judge(files: list[str], targets: list[str], expect: str = "fail", rc: int | None = code) -> tuple[bool, str]:
        v = judge_new_tests(found, rc, files=files, expect=expect, targets=targets)  # type: ignore[arg-type]
        return v.ok, v.reason

    assert judge(["tests/test_import.py"], ["pk.mod"])[0]
    assert judge(["tests/test_assert.py"], ["x"])[0]
    ok, why = judge(["tests/test_syntax.py"], ["x"])
    assert not ok and "SyntaxError" in why and "wrong reason" in why
    ok, why = judge(["tests/test_passes.py"], ["x"], rc=0)
    assert not ok and "pass on today's code" in why
    assert not judge(["tests/test_type.py"], ["x"])[0]
    assert not judge(["tests/test_passes.py"], ["x"], rc=5)[0]  # nothing collected
    # The requirement's code exists: the new tests must pass instead.
    assert judge(["tests/test_passes.py"], ["x"], expect="pass", rc=0)[0]
    assert not judge(["tests/test_assert.py"], ["x"], expect="pass")[0]


def test_not_junit() -> None:
    with pytest.raises(ValueError, match="not XML"):
        read_junit(b"<oops")
    with pytest.raises(ValueError, match="not a JUnit report"):
        read_junit(b"<html/>")
