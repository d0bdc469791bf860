"""The names of failing tests, from pytest's output or a JUnit XML report a gate wrote."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = ["MAX_NAMES", "failing_from_junit", "failing_from_pytest"]

MAX_NAMES = 200
"""At most this many names are kept (the total is reported apart)."""

# pytest's short summary: "FAILED tests/test_x.py::test_y - AssertionError: ..." / "ERROR tests/x.py::t"
_PYTEST = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.MULTILINE)
# pytest -v progress lines: "tests/test_x.py::test_y FAILED  [ 50%]"
_PYTEST_VERBOSE = re.compile(r"^(\S+::\S+) (?:FAILED|ERROR)\b", re.MULTILINE)


def failing_from_pytest(output: str) -> list[str]:
    """Node ids of failed or errored tests (in order, without duplicates)."""
    names = [m.group(1) for m in _PYTEST.finditer(output)]
    if not names:
        names = [m.group(1) for m in _PYTEST_VERBOSE.finditer(output)]
    return list(dict.fromkeys(names))


def failing_from_junit(data: bytes) -> list[str]:
    """``classname::name`` of every test case with a ``<failure>`` or ``<error>``.

    Raises ``ValueError`` for a file that is not JUnit XML.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"not a JUnit report (root element <{root.tag}>)")
    names: list[str] = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            classname, name = case.get("classname", ""), case.get("name", "?")
            names.append(f"{classname}::{name}" if classname else name)
    return list(dict.fromkeys(names))
