"""Why tests fail, and what the loop accepts: the ratchet on the tests gate and the tests-plan rule.

pytest's JUnit XML says, per test case, whether it failed (``<failure>``) or errored
(``<error>``, which is also how a module that cannot be collected is reported: a test case named
by the module with ``message="collection failure"``), with a message (``assert 1 == 2``,
``AttributeError: module 'pk' has no attribute 'g'``) and the traceback whose ``E`` lines name the
exception. :func:`read_junit` turns that into :class:`TestFailure` values.

**The ratchet.** While the loop works, the integration branch holds tests written before their
code (that is the point of writing them first). So the tests gate is judged, not by "no test
fails", but by: *every failing test cites a requirement whose code is still open*. Merging the
code of a requirement closes it, so from then on its tests must pass, and a test that cites no
open requirement must never fail (a regression). :func:`judge_tests` applies it.

**The tests-plan rule.** A proposed test is merged only if it fails on today's code *for the right
reason*: an assertion, or an ``ImportError``/``ModuleNotFoundError``/``AttributeError``/
``NameError`` naming what the requirement's code will provide (its module or callable). A syntax
error, a collection error of any other kind, a missing fixture, a ``TypeError``... is a rejection:
such a test would "fail" whatever the code does. A test for a requirement whose code already
exists must pass instead. :func:`judge_new_tests` applies it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "RIGHT_REASON_ERRORS",
    "TestFailure",
    "Verdict",
    "judge_new_tests",
    "judge_tests",
    "read_junit",
    "right_reason",
]

RIGHT_REASON_ERRORS = ("ImportError", "ModuleNotFoundError", "AttributeError", "NameError")
_EXC = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failed|Warning))\b:?\s*(.*)$", re.S)
_E_LINE = re.compile(r"^E\s+([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)):?\s*(.*)$", re.M)


@dataclass(frozen=True)
class TestFailure:
    """One failing or erroring test case (or a module that could not be collected)."""

    __test__ = False  # not a pytest test class

    node: str
    """``path::Class::name`` as pytest names it, or ``path`` alone for a collection error."""
    file: str | None
    outcome: Literal["failure", "error"]
    exception: str | None
    """``AssertionError`` for failed asserts; the exception's class name otherwise (None: unknown)."""
    message: str
    collection: bool = False

    def describe(self) -> str:
        what = self.exception or self.outcome
        return f"{self.node}: {what}{': ' + self.message if self.message else ''}"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def _path_of(classname: str, name: str, root: Path | None) -> tuple[str | None, list[str]]:
    """The test file of a JUnit ``classname`` (dotted module[.Class]) and the classes after it."""
    parts = [p for p in classname.split(".") if p] if classname else [p for p in name.split(".") if p]
    for cut in range(len(parts), 0, -1):
        candidate = "/".join(parts[:cut]) + ".py"
        if root is None or (root / candidate).is_file():
            return candidate, parts[cut:]
    return None, parts


def _exception(message: str, text: str) -> tuple[str | None, str]:
    first = message.strip()
    if first.startswith("assert ") or first == "assert" or first.startswith("AssertionError"):
        return "AssertionError", first.removeprefix("AssertionError").lstrip(": ")
    if (m := _EXC.match(first)) and m.group(1) != "collection":
        return m.group(1).rsplit(".", 1)[-1], m.group(2).strip()
    found = _E_LINE.findall(text)
    if found:
        exc, msg = found[-1]
        return exc.rsplit(".", 1)[-1], msg.strip()
    if re.search(r"^E\s+assert\b", text, re.M):
        return "AssertionError", first
    return None, first


def read_junit(data: bytes, root: Path | None = None) -> list[TestFailure]:
    """Failures and errors in a JUnit XML report (``root``, the checkout, resolves module names)."""
    try:
        tree = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if tree.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"not a JUnit report (root element <{tree.tag}>)")
    out: list[TestFailure] = []
    for case in tree.iter("testcase"):
        for outcome in ("failure", "error"):
            element = case.find(outcome)
            if element is None:
                continue
            classname, name = case.get("classname", ""), case.get("name", "?")
            message = element.get("message", "") or ""
            collection = not classname and message == "collection failure"
            file, classes = _path_of(classname, name, root)
            if collection:
                node = file or name
            else:
                node = "::".join([file or classname, *classes, name]) if file else f"{classname}::{name}"
            exc_name, msg = _exception("" if collection else message, element.text or "")
            kind: Literal["failure", "error"] = "failure" if outcome == "failure" else "error"
            out.append(TestFailure(node, file, kind, exc_name, msg[:500], collection))
            break
    return out


def _base(node: str) -> str:
    return node.split("[", 1)[0]


def cited_by(failure: TestFailure, citations: Mapping[str, Collection[str]]) -> set[str]:
    """Requirement ids the failing test cites (for a module that failed to import: the whole file's)."""
    if failure.collection and failure.file:
        return {r for node, reqs in citations.items() if node.split("::", 1)[0] == failure.file for r in reqs}
    return set(citations.get(_base(failure.node), ()))


def judge_tests(
    failures: Iterable[TestFailure], citations: Mapping[str, Collection[str]], open_requirements: Collection[str]
) -> Verdict:
    """The ratchet: every failure must cite an open requirement."""
    failures = list(failures)
    blocking = [f for f in failures if not (cited_by(f, citations) & set(open_requirements))]
    if blocking:
        shown = "; ".join(f.describe() for f in blocking[:5])
        more = f" and {len(blocking) - 5} more" if len(blocking) > 5 else ""
        return Verdict(False, f"{len(blocking)} failing test(s) cite no open requirement: {shown}{more}")
    if failures:
        return Verdict(True, f"{len(failures)} failing test(s), each for a requirement whose code is still to come")
    return Verdict(True, "every test passes")


def right_reason(failure: TestFailure, targets: Collection[str]) -> tuple[bool, str]:
    """Whether a new test fails for the right reason (see the module docstring)."""
    exc = failure.exception
    if exc == "AssertionError" and not failure.collection:
        return True, "an assertion fails"
    if exc in RIGHT_REASON_ERRORS:
        names = [t for t in targets if t]
        if not names or any(re.search(rf"(?<![\w]){re.escape(t)}(?![\w])", failure.message) for t in names):
            return True, f"{exc} of the missing name ({failure.message})"
        return False, f"{exc} of something the requirement does not provide ({failure.message})"
    if exc is None:
        return False, f"it {'cannot be collected' if failure.collection else 'errors'} for no reason we can read"
    where = "cannot be collected: " if failure.collection else ""
    return False, f"{where}{exc}: {failure.message}"


def judge_new_tests(
    failures: Iterable[TestFailure],
    returncode: int | None,
    *,
    files: Collection[str],
    expect: Literal["fail", "pass"],
    targets: Collection[str],
) -> Verdict:
    """The tests-plan rule for the new test ``files`` (their run's failures and exit status)."""
    mine = [f for f in failures if f.file in files or f.node.split("::", 1)[0] in files]
    if returncode == 5:
        return Verdict(False, "pytest collected no test from the proposed files")
    if expect == "pass":
        if mine or returncode not in (0, None):
            shown = "; ".join(f.describe() for f in mine[:3]) or f"exit status {returncode}"
            return Verdict(False, f"the requirement's code exists, so its new tests must pass: {shown}")
        return Verdict(True, "the new tests pass on the existing code")
    if not mine:
        return Verdict(False, "the new tests pass on today's code: they cannot show the requirement is missing")
    wrong = [(f, why) for f in mine for ok, why in [right_reason(f, targets)] if not ok]
    if wrong:
        shown = "; ".join(f"{f.node}: {why}" for f, why in wrong[:3])
        return Verdict(False, f"wrong reason to fail (a test must fail by an assertion or the missing name): {shown}")
    reasons = sorted({right_reason(f, targets)[1].split(" (")[0] for f in mine})
    return Verdict(True, f"{len(mine)} new test(s) fail for the right reason ({', '.join(reasons)})")
