"""The traceability matrix: requirement → contract operation → test → commit → gate result.

Built from the traceability index of a commit (contracts, tests and commit trailers citing each
requirement) and the merge decisions the loop recorded (which gates passed on each merge commit).
A requirement is *complete* when a contract, a test and a commit cite it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from llama_orch.agents._trace_model import TraceIndex

__all__ = ["MatrixRow", "TraceMatrix", "build_matrix", "gates_by_commit"]


class MatrixCommit(BaseModel):
    sha: str
    subject: str
    gates: list[str] = Field(default_factory=list)
    """``name: status`` of each gate the merge queue ran on it (empty when not merged by the loop)."""


class MatrixRow(BaseModel):
    requirement: str
    level: str | None
    source: str
    contracts: list[str]
    tests: list[str]
    commits: list[MatrixCommit]

    @property
    def complete(self) -> bool:
        return bool(self.contracts and self.tests and self.commits)


class TraceMatrix(BaseModel):
    commit: str
    rows: list[MatrixRow]
    unknown: list[str] = Field(default_factory=list)
    """Citations of ids no spec states."""

    @property
    def complete(self) -> int:
        return sum(r.complete for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["complete"] = self.complete
        data["total"] = len(self.rows)
        for row, out in zip(self.rows, data["rows"], strict=True):
            out["complete"] = row.complete
        return data


def gates_by_commit(events: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Merge commit → ``name: status`` of its gates, from a run's ``decision`` events."""
    out: dict[str, list[str]] = {}
    for e in events:
        if e.get("event") == "decision" and e.get("outcome") == "merged" and e.get("merge_commit"):
            out[e["merge_commit"]] = [f"{g['name']}: {g['status']}" for g in e.get("gates", [])]
    return out


def build_matrix(index: TraceIndex, commit: str, gates: Mapping[str, list[str]] | None = None) -> TraceMatrix:
    gates = gates or {}
    rows = []
    for req_id, entry in index.requirements.items():
        contracts = list(dict.fromkeys(f"{c.source}#{c.name}" if c.name not in ("", "/") else c.source
                                       for c in entry.contracts))  # fmt: skip
        tests = list(dict.fromkeys(c.name for c in entry.tests))
        seen: dict[str, MatrixCommit] = {}
        for c in entry.changes:
            seen.setdefault(c.source, MatrixCommit(sha=c.source, subject=c.name, gates=list(gates.get(c.source, []))))
        # The merge queue's commits (with their gates) first: they are what reached the branch.
        commits = sorted(seen.values(), key=lambda m: (not m.gates, not m.subject.startswith("Merge ")))
        rows.append(
            MatrixRow(
                requirement=req_id, level=entry.level.value if entry.level else None,
                source=f"{entry.source}:{entry.line}", contracts=contracts, tests=tests, commits=commits,
            )
        )  # fmt: skip
    unknown = sorted({c.req_id for c in index.gaps.unknown})
    return TraceMatrix(commit=commit, rows=rows, unknown=unknown)
