"""The traceability index: which contracts, tests and commits cite each requirement, and the gaps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from llama_orch.agents._spec_model import Level, Spec

CitationKind = Literal[
    "openapi-operation",
    "openapi-schema",
    "openapi",
    "json-schema",
    "pact-interaction",
    "test-name",
    "test-marker",
    "gherkin-tag",
    "commit",
]
Category = Literal["contract", "test", "change"]

CATEGORY: dict[str, Category] = {
    "openapi-operation": "contract",
    "openapi-schema": "contract",
    "openapi": "contract",
    "json-schema": "contract",
    "pact-interaction": "contract",
    "test-name": "test",
    "test-marker": "test",
    "gherkin-tag": "test",
    "commit": "change",
}


class Citation(BaseModel):
    """One place that cites a requirement id."""

    model_config = ConfigDict(frozen=True)

    req_id: str
    """The id cited; for a citation value that is no id at all, the raw value."""
    kind: CitationKind
    source: str
    """File (relative to the scanned root, POSIX) or commit sha."""
    name: str
    """Operation (``operationId`` or ``METHOD /path``), schema, interaction, test node id, scenario,
    or commit subject."""
    line: int | None = None

    @property
    def category(self) -> Category:
        return CATEGORY[self.kind]


class TraceEntry(BaseModel):
    id: str
    level: Level | None
    source: str
    line: int
    contracts: list[Citation] = []
    tests: list[Citation] = []
    changes: list[Citation] = []


class Gaps(BaseModel):
    no_contract: list[str]
    no_test: list[str]
    no_change: list[str]
    unknown: list[Citation]
    """Citations of ids that no spec states (or values that are not ids)."""


class TraceIndex(BaseModel):
    """Requirement id → what cites it, and the gaps. ``model_dump_json()`` is its JSON form."""

    requirements: dict[str, TraceEntry]
    gaps: Gaps

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def build_trace_index(spec: Spec, citations: Iterable[Citation]) -> TraceIndex:
    """Index ``citations`` by the requirements of ``spec`` (each id's first statement)."""
    entries = {r.id: TraceEntry(id=r.id, level=r.level, source=r.source, line=r.line) for r in spec.by_id.values()}
    unknown: list[Citation] = []
    for c in citations:
        entry = entries.get(c.req_id)
        if entry is None:
            unknown.append(c)
        else:
            {"contract": entry.contracts, "test": entry.tests, "change": entry.changes}[c.category].append(c)
    return TraceIndex(
        requirements=entries,
        gaps=Gaps(
            no_contract=[i for i, e in entries.items() if not e.contracts],
            no_test=[i for i, e in entries.items() if not e.tests],
            no_change=[i for i, e in entries.items() if not e.changes],
            unknown=unknown,
        ),
    )
