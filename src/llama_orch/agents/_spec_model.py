"""The spec data model: requirements with stable ids, RFC 2119 levels, and the problems found.

Parsing lives in :mod:`._spec_parse`, comparing two versions in :mod:`._spec_diff`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

DEFAULT_ID_PATTERN = r"[A-Z][A-Z0-9]+-\d{4}"
"""Default requirement id: an upper-case prefix, a hyphen, four digits (``AUTH-0001``)."""


class Level(StrEnum):
    """RFC 2119 / RFC 8174 keywords (upper case only, as RFC 8174 asks)."""

    MUST = "MUST"
    MUST_NOT = "MUST NOT"
    REQUIRED = "REQUIRED"
    SHALL = "SHALL"
    SHALL_NOT = "SHALL NOT"
    SHOULD = "SHOULD"
    SHOULD_NOT = "SHOULD NOT"
    RECOMMENDED = "RECOMMENDED"
    NOT_RECOMMENDED = "NOT RECOMMENDED"
    MAY = "MAY"
    OPTIONAL = "OPTIONAL"

    @property
    def strength(self) -> int:
        """3 for absolute requirements and prohibitions, 2 for SHOULD-like, 1 for MAY/OPTIONAL."""
        return _STRENGTH[self]


_STRENGTH = {
    Level.MUST: 3, Level.MUST_NOT: 3, Level.REQUIRED: 3, Level.SHALL: 3, Level.SHALL_NOT: 3,
    Level.SHOULD: 2, Level.SHOULD_NOT: 2, Level.RECOMMENDED: 2, Level.NOT_RECOMMENDED: 2,
    Level.MAY: 1, Level.OPTIONAL: 1,
}  # fmt: skip

# Longest alternatives first so that "MUST NOT" is not read as "MUST".
_LEVEL_RE = re.compile(
    r"(?<![A-Za-z])"
    r"(MUST NOT|SHALL NOT|SHOULD NOT|NOT RECOMMENDED|MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|OPTIONAL)"
    r"(?![A-Za-z])"
)


def strongest_level(text: str) -> Level | None:
    """The strongest RFC 2119 keyword in ``text``; the first one among equally strong ones.

    >>> strongest_level("Clients MAY retry and MUST NOT loop.")
    <Level.MUST_NOT: 'MUST NOT'>
    """
    found = [Level(m.group(1)) for m in _LEVEL_RE.finditer(text)]
    if not found:
        return None
    top = max(level.strength for level in found)
    return next(level for level in found if level.strength == top)


def compile_id_pattern(pattern: str = DEFAULT_ID_PATTERN) -> re.Pattern[str]:
    """``pattern`` as a whole-word matcher: not preceded by a letter, digit, ``_`` or ``-``, not
    followed by a letter, digit or ``_`` (so ``XAUTH-0001`` and ``AUTH-00012`` are not ids)."""
    return re.compile(rf"(?<![\w-])(?:{pattern})(?!\w)")


def normalize_text(text: str) -> str:
    """Whitespace collapsed to single spaces: how requirement texts are stored and compared."""
    return " ".join(text.split())


Form = Literal["list-item", "paragraph", "heading", "table-row"]


class Requirement(BaseModel):
    """One requirement statement."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    """The statement after its id, whitespace collapsed; code spans kept in backticks."""
    level: Level | None
    """The strongest RFC 2119 keyword in the text; ``None`` is reported as a ``no-level`` issue."""
    source: str
    line: int
    """1-based line of the statement in ``source``."""
    section: tuple[str, ...]
    """Heading path above the statement, outermost first."""
    form: Form


IssueKind = Literal["duplicate-id", "no-level", "empty-text"]


class SpecIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: IssueKind
    id: str
    source: str
    line: int
    message: str


class Spec(BaseModel):
    """Requirements of one or more spec documents, in document order, duplicates included."""

    model_config = ConfigDict(frozen=True)

    requirements: tuple[Requirement, ...] = ()

    def __iter__(self) -> Iterator[Requirement]:  # type: ignore[override]
        return iter(self.requirements)

    def __len__(self) -> int:
        return len(self.requirements)

    def __contains__(self, req_id: object) -> bool:
        return any(r.id == req_id for r in self.requirements)

    @property
    def ids(self) -> list[str]:
        """Distinct ids in order of first appearance."""
        return list(self.by_id)

    @property
    def by_id(self) -> dict[str, Requirement]:
        """Each id's first statement."""
        out: dict[str, Requirement] = {}
        for req in self.requirements:
            out.setdefault(req.id, req)
        return out

    def get(self, req_id: str) -> Requirement | None:
        return self.by_id.get(req_id)

    def duplicates(self) -> dict[str, list[Requirement]]:
        """Ids stated more than once, with every statement."""
        seen: dict[str, list[Requirement]] = {}
        for req in self.requirements:
            seen.setdefault(req.id, []).append(req)
        return {k: v for k, v in seen.items() if len(v) > 1}

    @property
    def issues(self) -> list[SpecIssue]:
        """Duplicated ids (each later statement), statements without an RFC 2119 keyword or text."""
        issues: list[SpecIssue] = []
        first: dict[str, Requirement] = {}
        for req in self.requirements:
            if (prior := first.setdefault(req.id, req)) is not req:
                issues.append(
                    SpecIssue(
                        kind="duplicate-id", id=req.id, source=req.source, line=req.line,
                        message=f"{req.id} is stated again; first at {prior.source}:{prior.line}",
                    )
                )  # fmt: skip
            if not req.text:
                issues.append(
                    SpecIssue(kind="empty-text", id=req.id, source=req.source, line=req.line,
                              message=f"{req.id} has no text")
                )  # fmt: skip
            elif req.level is None:
                issues.append(
                    SpecIssue(kind="no-level", id=req.id, source=req.source, line=req.line,
                              message=f"{req.id} has no RFC 2119 keyword (MUST, SHOULD, MAY, ...)")
                )  # fmt: skip
        return issues

    @classmethod
    def merge(cls, specs: Iterable[Spec]) -> Spec:
        """One spec of several documents (duplicates across them are then detected)."""
        return cls(requirements=tuple(r for spec in specs for r in spec.requirements))
