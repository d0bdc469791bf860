"""Gates: configuration from the repository, the pass/fail/error verdict, failing tests named, output capped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llama_orch.agents._gates import GateConfigError, GateSpec, load_gates, load_gates_at, parse_gates, run_gate
from llama_orch.agents._git import Git
from llama_orch.agents._reports import failing_from_junit, failing_from_pytest

from ._gitrepo import git, make_repo

PY = sys.executable

TOML = """
[[gates]]
name = "tests"
argv = ["python", "-m", "pytest", "-q"]
junit_xml = "out/junit.xml"
timeout_s = 900

[[gates]]
name = "lint"
kind = "lint"
argv = ["ruff", "check", "."]
memory_mb = 512
max_procs = 32
"""

YAML = """
gates:
  - name: contract
    kind: contract
    argv: [openapi-spec-validator, contracts/openapi/data.yaml]
    network: true
    env: {FOO: bar}
"""


def test_gates_from_toml_and_yaml(tmp_path: Path) -> None:
    tests, lint = parse_gates(TOML, source=".llorch/gates.toml")
    assert tests.argv == ("python", "-m", "pytest", "-q") and tests.kind == "tests" and tests.timeout_s == 900
    assert tests.network is False and tests.memory_mb == 2048 and tests.junit_xml == "out/junit.xml"
    assert (lint.kind, lint.memory_mb, lint.max_procs) == ("lint", 512, 32)
    (contract,) = parse_gates(YAML, source="llorch.yaml")
    assert contract.network is True and contract.env == {"FOO": "bar"} and contract.kind == "contract"

    (tmp_path / ".llorch").mkdir()
    (tmp_path / ".llorch" / "gates.toml").write_text(TOML)
    assert [g.name for g in load_gates(tmp_path)] == ["tests", "lint"]
    (tmp_path / "llorch.yaml").write_text("server: {port: 1}\n")  # a llorch.yaml without gates is fine
    assert [g.name for g in load_gates(tmp_path)] == ["tests", "lint"]
    (tmp_path / "llorch.yaml").write_text(YAML)
    with pytest.raises(GateConfigError, match="both"):
        load_gates(tmp_path)
    assert load_gates(tmp_path / ".llorch") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[gates]]\nname = "x"\n', r"gates\[0\]: argv: Field required"),
        ('[[gates]]\nname = "x"\nargv = []\n', r"gates\[0\]: argv"),
        ('[[gates]]\nname = "x"\nargv = ["a"]\nkind = "vibes"\n', r"gates\[0\]: kind"),
        ('[[gates]]\nname = "x"\nargv = ["a"]\ntimeout = 5\n', r"gates\[0\]: timeout: Extra inputs"),
        ('[[gates]]\nname = "x"\nargv = ["a"]\ntimeout_s = 0\n', r"timeout_s"),
        ('[[gates]]\nname = "../x"\nargv = ["a"]\n', r"name"),
        ('[[gates]]\nname = "x"\nargv = ["a"]\n[[gates]]\nname = "x"\nargv = ["b"]\n', "duplicate gate names: x"),
        ("gates = 3\n", "must be a list"),
        ("[[gates]\n", "not valid TOML"),
    ],
)
def test_malformed_gate_config_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        parse_gates(text, source=".llorch/gates.toml")


async def test_gates_are_read_from_a_commit_not_a_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=TOML)
    first = git(repo, "rev-parse", "HEAD")
    (repo / ".llorch" / "gates.toml").write_text("")
    git(repo, "commit", "--quiet", "-am", "drop gates")
    assert [g.name for g in await load_gates_at(Git(repo), first)] == ["tests", "lint"]
    assert await load_gates_at(Git(repo), "HEAD") == []


def _spec(*argv: str, **fields: object) -> GateSpec:
    return GateSpec.model_validate({"name": "g", "argv": argv, "timeout_s": 60, **fields})


async def test_pass_and_fail_are_judged_from_the_exit_status(tmp_path: Path) -> None:
    ok = await run_gate(_spec(PY, "-c", "print('fine')"), tmp_path, subject="abc")
    assert (ok.status, ok.returncode, ok.stdout, ok.subject) == ("pass", 0, "fine\n", "abc")
    bad = await run_gate(_spec(PY, "-c", "import sys; print('nope', file=sys.stderr); sys.exit(3)"), tmp_path)
    assert (bad.status, bad.returncode, bad.reason) == ("fail", 3, "exit status 3")
    assert bad.stderr == "nope\n"
    data = bad.to_json()
    assert data["status"] == "fail" and data["isolation"]["applied"]["time"].startswith("timeout 60 s")


async def test_a_missing_command_is_an_error_not_a_failure(tmp_path: Path) -> None:
    result = await run_gate(_spec("definitely-not-a-command-llorch"), tmp_path)
    assert result.status == "error"
    assert "could not run" in result.reason and "definitely-not-a-command-llorch" in result.reason


async def test_gate_environment_is_minimal_and_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLORCH_TOKEN", "s3cret-token-value")
    code = "import os, json; print(json.dumps(sorted(os.environ)))"
    result = await run_gate(_spec(PY, "-c", code, env={"EXTRA": "1"}), tmp_path)
    assert result.status == "pass"
    names = set(json.loads(result.stdout))
    assert "LLORCH_TOKEN" not in names
    assert {"PATH", "HOME", "TMPDIR", "LLORCH_GATE", "EXTRA"} <= names


async def test_failing_tests_are_named_from_pytest_output(tmp_path: Path) -> None:
    (tmp_path / "test_things.py").write_text(
        "import pytest\n\ndef test_ok():\n    pass\n\ndef test_broken():\n    assert 1 == 2\n\n"
        "@pytest.fixture\ndef boom():\n    raise RuntimeError('setup')\n\ndef test_setup(boom):\n    pass\n"
    )
    result = await run_gate(_spec(PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"), tmp_path)
    assert result.status == "fail" and result.returncode == 1
    assert result.failing_tests == ("test_things.py::test_broken", "test_things.py::test_setup")
    assert result.failing_total == 2
    assert "2 failing: test_things.py::test_broken, test_things.py::test_setup" in result.reason


async def test_junit_outside_the_checkout_is_not_read(tmp_path: Path) -> None:
    checkout = tmp_path / "co"
    checkout.mkdir()
    result = await run_gate(_spec(PY, "-c", "raise SystemExit(1)", junit_xml="../outside.xml"), checkout)
    assert result.status == "fail"
    assert any("outside the checkout" in note for note in result.notes)


async def test_output_is_capped_with_a_note(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('A' * 100 + 'x' * 1_000_000 + 'THE END')"
    result = await run_gate(_spec(PY, "-c", code), tmp_path, output_cap_bytes=4096)
    assert result.status == "pass"
    assert result.stdout.startswith("A" * 100)
    assert result.stdout.endswith("THE END")
    assert "bytes truncated" in result.stdout and len(result.stdout) < 4096 + 100
    assert result.output_dropped_bytes == 100 + 1_000_000 + 7 - 4096


def test_pytest_summary_parsing() -> None:
    out = (
        "..F.E\n=== short test summary info ===\n"
        "FAILED tests/test_a.py::test_x[1-2] - AssertionError: boom\n"
        "FAILED tests/test_a.py::TestK::test_y\n"
        "ERROR tests/test_b.py::test_z - RuntimeError\n"
        "FAILED tests/test_a.py::test_x[1-2] - again\n"
    )
    assert failing_from_pytest(out) == ["tests/test_a.py::test_x[1-2]", "tests/test_a.py::TestK::test_y",
                                        "tests/test_b.py::test_z"]  # fmt: skip
    verbose = "tests/test_a.py::test_1 PASSED [ 50%]\ntests/test_a.py::test_2 FAILED [100%]\n"
    assert failing_from_pytest(verbose) == ["tests/test_a.py::test_2"]
    assert failing_from_pytest("all good\n") == []


def test_junit_parsing() -> None:
    xml = b"""<?xml version="1.0" encoding="utf-8"?>
    <testsuites><testsuite name="pytest" tests="3" failures="1" errors="1">
      <testcase classname="tests.test_a" name="test_ok"/>
      <testcase classname="tests.test_a" name="test_bad"><failure message="x">trace</failure></testcase>
      <testcase classname="" name="test_err"><error message="y"/></testcase>
      <testcase classname="tests.test_a" name="test_skip"><skipped/></testcase>
    </testsuite></testsuites>"""
    assert failing_from_junit(xml) == ["tests.test_a::test_bad", "test_err"]
    with pytest.raises(ValueError, match="not XML"):
        failing_from_junit(b"<oops")
    with pytest.raises(ValueError, match="not a JUnit report"):
        failing_from_junit(b"<html/>")
