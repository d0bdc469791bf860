"""Static checks of proposed Python files, before any gate runs them.

Small models often finish a correct function and then keep writing: another ``def`` that is not
Python (``def test_x.py:``), half a statement cut off at ``max_tokens``. :func:`salvage` keeps the
longest run of whole top-level statements that parses and still defines what the item needs, so a
good answer is not thrown away for the noise after it.

A proposed test can also fail "for the right reason" today (the module it imports is missing) and
still never pass: a test function asking for a fixture nobody defines errors at set-up once the code
exists. :func:`unresolved_fixtures` finds those from the file's syntax and the fixtures pytest
lists for the checkout (:func:`fixture_names`, which reads ``pytest --fixtures``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterable

__all__ = ["defined_names", "fixture_names", "parses", "salvage", "syntax_error", "unresolved_fixtures"]


def syntax_error(text: str) -> str | None:
    """``line N: message`` when ``text`` is not Python, else ``None``."""
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. a NUL byte
        return str(exc)
    return None


def parses(text: str) -> bool:
    return syntax_error(text) is None


def defined_names(text: str) -> set[str]:
    """Top-level functions, classes and assigned names of a module that parses (empty if it does not)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out.update(t.id for t in targets if isinstance(t, ast.Name))
    return out


def _statement_starts(lines: list[str]) -> list[int]:
    """Indexes of lines that begin a top-level statement (column 0, not a comment or a closing bracket)."""
    return [
        i
        for i, line in enumerate(lines)
        if i > 0
        and line[:1] not in ("", " ", "\t", "\n", "\r", "#", ")", "]", "}", "@")
        and not lines[i - 1].rstrip().endswith("\\")
    ]


def salvage(text: str, *, defines: Collection[str] = (), tests: bool = False) -> str | None:
    """``text`` cut after its last whole top-level statement such that it parses, defines every name
    in ``defines`` and (``tests``) still holds a ``test_`` function; ``None`` when no cut does.

    A ``text`` that parses already is returned as it is."""

    def good(candidate: str) -> bool:
        names = defined_names(candidate)
        if not parses(candidate) or not set(defines) <= names:
            return False
        return not tests or any(n.startswith("test") for n in names)

    if good(text):
        return _without_trailing_noise(text)
    lines = text.splitlines(keepends=True)
    # A decorator belongs to the statement after it: cut before the decorators, not between.
    for i in reversed(_statement_starts(lines)):
        j = i
        while j > 0 and lines[j - 1].startswith("@"):
            j -= 1
        candidate = "".join(lines[:j]).rstrip() + "\n"
        if good(candidate):
            return _without_trailing_noise(candidate)
    return None


def _without_trailing_noise(text: str) -> str:
    """``text`` without the bare expressions at its end that do nothing (a file name the model wrote
    after the code, ``src/pkg/mod.py``, parses as a division): calls, docstrings and ``...`` stay."""
    tree = ast.parse(text)
    body = tree.body
    end = len(body)
    while end > 1 and isinstance(body[end - 1], ast.Expr) and _noise(body[end - 1]):
        end -= 1
    if end == len(body):
        return text
    lines = text.splitlines(keepends=True)
    last = body[end - 1].end_lineno or len(lines)
    return "".join(lines[:last]).rstrip() + "\n"


def _noise(node: ast.stmt) -> bool:
    value = node.value if isinstance(node, ast.Expr) else None
    if value is None or isinstance(value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)):
        return False
    return not (isinstance(value, ast.Constant) and (isinstance(value.value, str) or value.value is Ellipsis))


# -- fixtures -------------------------------------------------------------------------------------------

_LISTED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?: \[[a-z]+ scope\])? -- ", re.MULTILINE)


def fixture_names(listing: str) -> set[str]:
    """The fixture names in ``pytest --fixtures`` output (each listed at the start of a line)."""
    return set(_LISTED.findall(listing))


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    parts: list[str] = []
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(_decorator_name(d).rsplit(".", 1)[-1] == "fixture" for d in node.decorator_list)


def _parametrized(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    out: set[str] = set()
    for d in node.decorator_list:
        if not (isinstance(d, ast.Call) and _decorator_name(d).endswith("parametrize") and d.args):
            continue
        first = d.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            out.update(n.strip() for n in first.value.split(",") if n.strip())
        elif isinstance(first, (ast.List, ast.Tuple)):
            out.update(e.value for e in first.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return out


# Decorators that fill a test's arguments themselves (hypothesis, unittest.mock): not fixtures.
_FILLERS = ("given", "patch", "patch.object", "patch.dict", "patch.multiple")


def _tests_of(tree: ast.Module) -> Iterable[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.name.startswith("test"):
                    yield sub


def unresolved_fixtures(source: str, known: Collection[str]) -> list[tuple[str, str]]:
    """``(test, argument)`` for each test argument that no fixture in ``known``, in the file, or in
    a ``parametrize`` of that test provides. Tests whose arguments a decorator fills (hypothesis's
    ``given``, ``mock.patch``) and arguments with defaults are left alone; so is a file that does not
    parse (the gates say why)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    local = {
        n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_fixture(n)
    }
    provided = set(known) | local | {"request", "self", "cls"}
    out: list[tuple[str, str]] = []
    for test in _tests_of(tree):
        if any(_decorator_name(d).endswith(_FILLERS) for d in test.decorator_list):
            continue
        args = [*test.args.posonlyargs, *test.args.args]
        without_default = args[: len(args) - len(test.args.defaults)] if test.args.defaults else args
        mine = provided | _parametrized(test)
        out += [(test.name, a.arg) for a in without_default if a.arg not in mine]
    return out
