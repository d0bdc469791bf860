"""Commit trailers that tie code to requirements and runs: ``Requirement:``, ``Run-Id:``, ``Artifact-Id:``, ``Seed:``.

Written with ``git interpret-trailers`` (so git's own trailer rules apply) and read back with
``git log --format=%(trailers)``; the traceability index reads the same trailers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from llama_orch.agents._git import Git

__all__ = ["TRAILER_KEYS", "Trailers", "read_trailers", "with_trailers"]

TRAILER_KEYS = ("Requirement", "Run-Id", "Artifact-Id", "Seed")


@dataclass(frozen=True)
class Trailers:
    """What a commit cites: one ``Requirement:`` per requirement id, the run, artifacts and seed.

    >>> Trailers(requirements=["AUTH-0001"], run_id="r-7", seed=42).pairs()
    [('Requirement', 'AUTH-0001'), ('Run-Id', 'r-7'), ('Seed', '42')]
    """

    requirements: Sequence[str] = ()
    run_id: str | None = None
    artifact_ids: Sequence[str] = ()
    seed: int | None = None
    extra: Sequence[tuple[str, str]] = field(default=())
    """Further ``(key, value)`` trailers, e.g. ``("Gate", "tests: pass")``."""

    def pairs(self) -> list[tuple[str, str]]:
        pairs = [("Requirement", r) for r in self.requirements]
        if self.run_id is not None:
            pairs.append(("Run-Id", self.run_id))
        pairs += [("Artifact-Id", a) for a in self.artifact_ids]
        if self.seed is not None:
            pairs.append(("Seed", str(self.seed)))
        pairs += list(self.extra)
        for key, value in pairs:
            _check(key, value)
        return pairs

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Trailers:
        """Collect known trailers (first seed and run id win; duplicates dropped, order kept)."""
        reqs: list[str] = []
        arts: list[str] = []
        run_id: str | None = None
        seed: int | None = None
        for key, value in pairs:
            if key == "Requirement" and value not in reqs:
                reqs.append(value)
            elif key == "Artifact-Id" and value not in arts:
                arts.append(value)
            elif key == "Run-Id" and run_id is None:
                run_id = value
            elif key == "Seed" and seed is None and value.lstrip("-").isdigit():
                seed = int(value)
        return cls(requirements=tuple(reqs), run_id=run_id, artifact_ids=tuple(arts), seed=seed)


def _check(key: str, value: str) -> None:
    if not key or any(c in key for c in ": \t\r\n"):
        raise ValueError(f"invalid trailer key {key!r}")
    if not value.strip() or "\n" in value or "\r" in value:
        raise ValueError(f"trailer {key!r} needs a one-line, non-empty value")


async def with_trailers(git: Git, message: str, trailers: Trailers) -> str:
    """``message`` with ``trailers`` appended by ``git interpret-trailers`` (exact duplicates skipped)."""
    if not message.strip():
        raise ValueError("a commit message must not be empty")
    args = ["interpret-trailers", "--where", "end", "--if-exists", "addIfDifferent"]
    for key, value in trailers.pairs():
        args += ["--trailer", f"{key}: {value}"]
    return (await git(*args, input=message if message.endswith("\n") else message + "\n")).stdout


async def read_trailers(git: Git, rev: str) -> list[tuple[str, str]]:
    """The trailers of one commit, in order, as ``(key, value)``."""
    text = await git.out("log", "-1", "--format=%(trailers:only,unfold)", rev, "--")
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            pairs.append((key.strip(), value.strip()))
    return pairs
