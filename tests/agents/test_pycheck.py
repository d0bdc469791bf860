"""Static checks of proposed Python (:mod:`llama_orch.agents._pycheck`) and where the loop applies
them: a coder's answer cut to the code that parses, a malformed one asked again, and a test asking
for a fixture nobody defines rejected by the tests-plan gate (with a real pytest listing fixtures).

The model outputs here are what the embedded Gemma 3 270M wrote in a real ``scripts/run``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llama_orch.agents._formats import OutputFormatError
from llama_orch.agents._loop_config import LoopConfig
from llama_orch.agents._loop_gates import LoopGates
from llama_orch.agents._plan import ItemInputs, Target, WorkItem
from llama_orch.agents._prompts import Role
from llama_orch.agents._pycheck import fixture_names, salvage, syntax_error, unresolved_fixtures
from llama_orch.agents._stages import ProposalFormat

# code:TINY-0004 as the model wrote it: the function, then lines that are not Python.
RAMBLING_CODE = """def digit_sum(n):
    return n * (n + 1) * (2 ** (n - 1))

def test_tiny_0001.py:
def test_tiny_0002.py:
def test_tiny_00"""

# test:TINY-0001: it fails today for the missing module, and would error on its fixture forever.
FIXTURE_TEST = """import pytest

from tinykit.words import word_count


@pytest.mark.req("TINY-0001")
def test_tiny_0001(text):
    assert len(text.split()) == 3
"""


def test_salvage_keeps_the_whole_statements_that_parse() -> None:
    kept = salvage(RAMBLING_CODE, defines=["digit_sum"])
    assert kept == "def digit_sum(n):\n    return n * (n + 1) * (2 ** (n - 1))\n"
    assert salvage("x = 1\n", defines=["x"]) == "x = 1\n"  # already Python: unchanged
    # Nothing to keep: the needed name is in the broken part, or nothing parses at all.
    assert salvage("def a():\n    return 1\n\ndef digit_sum(n:\n", defines=["digit_sum"]) is None
    assert salvage("def (:\n") is None
    # A decorator stays with its function: the cut goes before it.
    text = "def f():\n    return 1\n\n@pytest.mark.req('X-1')\ndef test_g(:\n"
    assert salvage(text, defines=["f"]) == "def f():\n    return 1\n"
    # Test files keep at least one test.
    assert salvage("import pytest\n\ndef test_a():\n    assert 1\n\ndef test_b(:\n", tests=True) == (
        "import pytest\n\ndef test_a():\n    assert 1\n"
    )
    assert salvage("import pytest\n\ndef test_b(:\n", tests=True) is None
    # A file name written after the code parses (as a division) and does nothing: it goes.
    assert salvage("def f(t):\n    return t\n\nsrc/tinykit/words.py\n", defines=["f"]) == "def f(t):\n    return t\n"
    assert salvage("x = 1\nprint(x)\n") == "x = 1\nprint(x)\n"  # a call is not noise
    # An indented continuation or a closing bracket is never a cut point.
    assert salvage("x = [\n1,\n]\ny = (\n", defines=["x"]) == "x = [\n1,\n]\n"


def test_syntax_errors_name_the_line() -> None:
    assert syntax_error("x = 1\n") is None
    assert syntax_error(RAMBLING_CODE) == "line 4: expected '('"


def test_fixture_names_are_read_from_pytests_listing() -> None:
    listing = (
        "capsys -- .../_pytest/capture.py:1012\n    Enable text capturing.\n\n"
        "doctest_namespace [session scope] -- .../_pytest/doctest.py:737\n    Fixture.\n"
        "word -- tests/conftest.py:4\n    no docstring available\n"
    )
    assert fixture_names(listing) == {"capsys", "doctest_namespace", "word"}


def test_unresolved_fixtures() -> None:
    known = {"tmp_path", "capsys"}
    assert unresolved_fixtures(FIXTURE_TEST, known) == [("test_tiny_0001", "text")]
    # test_tiny_0004(test_tiny_0004): the model named the argument after the test.
    assert unresolved_fixtures("def test_tiny_0004(test_tiny_0004):\n    pass\n", known) == [
        ("test_tiny_0004", "test_tiny_0004")
    ]
    resolved = """import pytest
from hypothesis import given, strategies as st

@pytest.fixture
def text():
    return "a b"

@pytest.mark.parametrize("n, m", [(1, 2)])
def test_params(n, m, tmp_path, text):
    pass

@pytest.mark.parametrize(("a", "b"), [(1, 2)])
def test_tuple(a, b):
    pass

@given(st.integers())
def test_property(x):
    pass

def test_default(x=3):
    pass

class TestWords:
    def test_method(self, capsys, words):
        pass
"""
    assert unresolved_fixtures(resolved, known) == [("test_method", "words")]
    assert unresolved_fixtures("def test_x(:\n", known) == []  # not Python: the gates say why


def _item(kind: str, *, file: str, callable_: str = "digit_sum") -> WorkItem:
    role = {"code": Role.CODER, "test": Role.TEST_WRITER}[kind]
    return WorkItem(
        id=f"{kind}:TINY-0004", kind=kind, role=role, requirements=("TINY-0004",), title="digit sum",  # type: ignore[arg-type]
        inputs=ItemInputs(requirement="[TINY-0004] (MUST) digit_sum", source="specs/tiny.md"),
        target=Target(module="tinykit.digits", callable=callable_, file="src/tinykit/digits.py"),
        files=(file,), gate="tests",
    )  # fmt: skip


def _answer(path: str, body: str) -> str:
    return f"{path}\n<<<<<<< FILE\n{body}\n>>>>>>> FILE\n"


def test_a_coders_rambling_answer_is_cut_and_a_broken_one_asked_again(tmp_path: Path) -> None:
    item = _item("code", file="src/tinykit/digits.py")
    fmt = ProposalFormat(tmp_path, item, LoopConfig(), spec_files=())
    changes = fmt.parse(_answer("src/tinykit/digits.py", RAMBLING_CODE))
    (change,) = changes.changes
    assert change.after.decode() == "def digit_sum(n):\n    return n * (n + 1) * (2 ** (n - 1))\n"
    with pytest.raises(OutputFormatError, match=r"src/tinykit/digits.py is not valid Python \(line 1"):
        fmt.parse(_answer("src/tinykit/digits.py", "def digit_sum(n:\n    return n"))
    with pytest.raises(OutputFormatError, match="it does not define digit_sum"):
        fmt.parse(_answer("src/tinykit/digits.py", "def other(n):\n    return n"))


@pytest.mark.subprocess
async def test_the_tests_plan_gate_refuses_a_test_asking_for_an_unknown_fixture(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    conftest = "import pytest\n\n@pytest.fixture\ndef words():\n    return 'a b'\n"
    (tmp_path / "tests" / "conftest.py").write_text(conftest)
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nmarkers = ["req(id): requirement"]\n')
    gates = LoopGates(LoopConfig(), [], has_contracts=False)
    gates.python = sys.executable
    files = ("tests/test_tiny_0001.py",)
    (tmp_path / files[0]).write_text(FIXTURE_TEST)
    assert await gates._unknown_fixtures(tmp_path, "candidate", files) == [("test_tiny_0001", "text")]
    # The conftest's fixture and pytest's own are known; so the same test using them passes the check.
    (tmp_path / files[0]).write_text(FIXTURE_TEST.replace("(text)", "(words, tmp_path)"))
    assert await gates._unknown_fixtures(tmp_path, "candidate", files) == []
