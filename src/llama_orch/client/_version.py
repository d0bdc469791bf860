"""API version pinning (OC-CLI-2202): the range of server API versions a client accepts.

A range is comma-separated clauses that must all hold, each an operator (``>=``, ``>``, ``<=``,
``<``, ``==``, ``!=``) and a dotted version; missing components count as 0, so ``<0.2`` means
``<0.2.0``. Anything after the numeric part of a server's version (``0.2.0-rc1``) is ignored.

>>> VersionRange(">=0.1,<0.2").contains("0.1.7")
True
>>> VersionRange(">=0.1,<0.2").contains("0.2.0")
False
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

__all__ = ["SUPPORTED_API_VERSIONS", "VersionRange", "parse_version"]

SUPPORTED_API_VERSIONS = ">=0.1,<0.2"
"""The server API versions this SDK speaks: within a major (0.x: minor) version the API only gains
optional fields, so a newer 0.1.z server works and a 0.2 one may not."""

_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$")
_NUMERIC = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def parse_version(version: str) -> tuple[int, ...]:
    """``"0.1.0"`` → ``(0, 1, 0)``; raises ValueError when it does not start with a number."""
    match = _NUMERIC.match(version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = max(len(a), len(b))
    return a + (0,) * (size - len(a)), b + (0,) * (size - len(b))


class VersionRange:
    """A set of versions given by clauses such as ``>=0.1,<0.2``."""

    def __init__(self, spec: str) -> None:
        clauses: list[tuple[str, tuple[int, ...]]] = []
        for part in spec.split(","):
            match = _CLAUSE.match(part)
            if match is None:
                raise ValueError(f"bad version range {spec!r}: clause {part.strip()!r} is not like '>=0.1'")
            clauses.append((match.group(1), parse_version(match.group(2))))
        self.spec = spec
        self._clauses = clauses

    def contains(self, version: str) -> bool:
        """Whether ``version`` is in the range; a version that is not a number is not."""
        try:
            have = parse_version(version)
        except ValueError:
            return False
        for op, bound in self._clauses:
            left, right = _padded(have, bound)
            if not _OPS[op](left, right):
                return False
        return True

    def __str__(self) -> str:
        return self.spec

    def __repr__(self) -> str:
        return f"VersionRange({self.spec!r})"
