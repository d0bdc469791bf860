"""The merge queue: candidates reach the integration branch one at a time, and only with passing gates.

For each candidate branch, in arrival order:

1. ``git merge-tree --write-tree <integration> <candidate>`` computes the merge in the object
   database alone, touching no worktree: the merged tree, or the conflicting paths (rejected).
2. The merged tree is checked out in a scratch worktree and the gates run on it. The gates come
   from the integration head (trusted), not from the candidate.
3. Only when every gate passes: ``git commit-tree`` makes the merge commit (parents: integration
   head, candidate; the candidate's trailers kept, the gate results' artifact ids added), and
   ``git update-ref <ref> <new> <old>`` advances the branch only if it still points where the
   check started: a concurrent advance is never overwritten. If it moved, the candidate goes
   round again against the new head (a bounded number of times).

So the integration branch only ever holds commits whose tree passed the gates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from llama_orch.agents._artifacts_client import AgentArtifacts
from llama_orch.agents._gates import GateResult, GateSpec, load_gates_at, run_gates
from llama_orch.agents._git import Git, GitError
from llama_orch.agents._trailers import Trailers, with_trailers
from llama_orch.agents._workspace import WorkspaceManager

__all__ = ["GateRunner", "MergeDecision", "MergePreview", "MergeQueue", "preview_merge"]

log = logging.getLogger("llama_orch.agents.merge")

Outcome = Literal["merged", "up-to-date", "conflict", "gates-failed", "gave-up"]
GateRunner = Callable[[Sequence[GateSpec], Path, str], Awaitable[list[GateResult]]]
"""``(gates, checkout, subject) -> results``; :func:`run_gates` unless a caller brings its own."""


@dataclass(frozen=True)
class MergePreview:
    """What ``git merge-tree --write-tree`` says about merging two commits."""

    tree: str
    conflicts: tuple[str, ...]
    messages: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass(frozen=True)
class MergeDecision:
    """The queue's verdict on one candidate."""

    branch: str
    candidate: str
    outcome: Outcome
    reason: str
    integration_before: str
    integration_after: str
    conflicts: tuple[str, ...] = ()
    gate_results: tuple[GateResult, ...] = ()
    gate_artifact_ids: tuple[str, ...] = ()
    merged_tree: str | None = None
    merge_commit: str | None = None
    attempts: int = 1
    artifact_id: str | None = field(default=None, compare=False)

    @property
    def accepted(self) -> bool:
        return self.outcome in ("merged", "up-to-date")

    def to_json(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "candidate": self.candidate,
            "outcome": self.outcome,
            "accepted": self.accepted,
            "reason": self.reason,
            "integration_before": self.integration_before,
            "integration_after": self.integration_after,
            "conflicts": list(self.conflicts),
            "gates": [{"name": r.name, "status": r.status, "reason": r.reason} for r in self.gate_results],
            "gate_artifact_ids": list(self.gate_artifact_ids),
            "merged_tree": self.merged_tree,
            "merge_commit": self.merge_commit,
            "attempts": self.attempts,
        }


async def preview_merge(git: Git, ours: str, theirs: str) -> MergePreview:
    """Merge ``theirs`` into ``ours`` in the object database only; conflicting paths if any."""
    result = await git("merge-tree", "--write-tree", "--name-only", "-z", ours, theirs, check=False)
    if result.returncode not in (0, 1):
        raise GitError(("git", "merge-tree", "--write-tree", ours, theirs), result.returncode, result.stderr)
    tokens = result.stdout.split("\0")
    tree, i = tokens[0], 1
    conflicts: list[str] = []
    if result.returncode == 1:
        while i < len(tokens) and tokens[i] != "":
            conflicts.append(tokens[i])
            i += 1
        i += 1
    messages: list[str] = []
    # Informational messages: <count> NUL <path>... NUL <type> NUL <message> NUL
    while i < len(tokens) and tokens[i].isdigit():
        n = int(tokens[i])
        if i + n + 2 >= len(tokens):
            break
        messages.append(tokens[i + n + 2].strip())
        i += n + 3
    return MergePreview(tree, tuple(dict.fromkeys(conflicts)), tuple(messages))


class MergeQueue:
    """Serializes merges into the integration branch (FIFO, one at a time per queue).

    >>> queue = MergeQueue(manager, artifacts=record, run_id="run-42")      # doctest: +SKIP
    >>> decision = await queue.submit("llorch/agent/a1")                     # doctest: +SKIP
    >>> decision.outcome, decision.reason                                    # doctest: +SKIP
    ('merged', 'all 2 gates passed')
    """

    def __init__(
        self,
        workspaces: WorkspaceManager,
        *,
        artifacts: AgentArtifacts | None = None,
        gates: Sequence[GateSpec] | None = None,
        runner: GateRunner | None = None,
        run_id: str | None = None,
        max_attempts: int = 3,
        fail_fast: bool = False,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.workspaces = workspaces
        self.artifacts = artifacts
        self.gates = None if gates is None else list(gates)
        """Fixed gates; None (the default) reads them from the integration head each time."""
        self._runner = runner or self._run_gates
        self.run_id = run_id
        self.max_attempts = max_attempts
        self.fail_fast = fail_fast
        # asyncio.Lock wakes its waiters in arrival order: candidates are merged first come, first served.
        self._lock = asyncio.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Candidates submitted and not yet decided."""
        return self._waiting

    async def submit(self, branch: str, *, parent_artifact: str | None = None) -> MergeDecision:
        """Queue ``branch`` (as it is now) for merging; returns the decision once it is its turn and done."""
        git = self.workspaces.git
        candidate = await git.rev(f"refs/heads/{branch}") or await git.rev(branch)
        if candidate is None:
            raise ValueError(f"{branch!r} names no commit")
        self._waiting += 1
        try:
            async with self._lock:
                decision = await self._decide(branch, candidate, parent_artifact)
        finally:
            self._waiting -= 1
        if self.artifacts is not None:
            stored = await self.artifacts.merge_decision(decision, parent=parent_artifact, tags=[f"branch:{branch}"])
            decision = replace(decision, artifact_id=stored.id)
        log.info(
            "merge decision for %s: %s",
            branch,
            decision.outcome,
            extra={"narration": f"{branch} {decision.outcome}: {decision.reason}"},
        )
        return decision

    async def _decide(self, branch: str, candidate: str, parent_artifact: str | None) -> MergeDecision:
        git = self.workspaces.git
        for attempt in range(1, self.max_attempts + 1):
            head = await self.workspaces.integration_head()

            def verdict(outcome: Outcome, reason: str, **more: Any) -> MergeDecision:
                more.setdefault("integration_after", head)  # noqa: B023 - called within this iteration
                return MergeDecision(
                    branch=branch,
                    candidate=candidate,
                    outcome=outcome,
                    reason=reason,
                    integration_before=head,  # noqa: B023
                    attempts=attempt,  # noqa: B023
                    **more,
                )

            if await _is_ancestor(git, candidate, head):
                return verdict("up-to-date", "already contained in the integration branch")
            preview = await preview_merge(git, head, candidate)
            if not preview.clean:
                reason = f"conflicts with the integration branch in {', '.join(preview.conflicts)}"
                return verdict("conflict", reason, conflicts=preview.conflicts)
            gates = self.gates if self.gates is not None else await load_gates_at(git, head)
            results = await self._check(gates, head, preview.tree)
            gate_ids = await self._record_gates(results, parent_artifact, branch)
            checked = {"gate_results": tuple(results), "gate_artifact_ids": gate_ids, "merged_tree": preview.tree}
            failed = [r for r in results if not r.passed]
            if failed:
                reason = "; ".join(f"gate {r.name}: {r.status} ({r.reason})" for r in failed)
                return verdict("gates-failed", reason, **checked)
            commit = await self._commit(branch, head, candidate, preview.tree, gate_ids)
            ref = self.workspaces.integration_ref
            swapped = await git("update-ref", "-m", f"llorch merge queue: {branch}", ref, commit, head, check=False)
            if swapped.returncode == 0:
                n = len(results)
                reason = f"all {n} gate{'s' if n != 1 else ''} passed" if results else "merged (no gates configured)"
                return verdict("merged", reason, integration_after=commit, merge_commit=commit, **checked)
            now = await self.workspaces.integration_head()
            if now == head:  # it did not move: the update failed for another reason
                raise GitError(("git", "update-ref", ref, commit, head), swapped.returncode, swapped.stderr)
            log.info(
                "integration branch moved during the check of %s (%s -> %s): checking again",
                branch,
                head[:12],
                now[:12],
                extra={"narration": "someone else merged first; re-checking against the new head"},
            )
        head = await self.workspaces.integration_head()
        return MergeDecision(
            branch=branch,
            candidate=candidate,
            outcome="gave-up",
            reason=f"the integration branch kept moving: gave up after {self.max_attempts} attempts",
            integration_before=head,
            integration_after=head,
            attempts=self.max_attempts,
        )

    async def _check(self, gates: Sequence[GateSpec], head: str, tree: str) -> list[GateResult]:
        if not gates:
            return []
        async with self.workspaces.scratch(head) as scratch:
            # The scratch worktree sits at the integration head; make its index and files the merged tree.
            await scratch("read-tree", "--reset", "-u", tree)
            return await self._runner(gates, scratch.cwd, tree)

    async def _run_gates(self, gates: Sequence[GateSpec], checkout: Path, subject: str) -> list[GateResult]:
        return await run_gates(gates, checkout, subject=subject, fail_fast=self.fail_fast)

    async def _record_gates(self, results: Sequence[GateResult], parent: str | None, branch: str) -> tuple[str, ...]:
        if self.artifacts is None:
            return ()
        ids = []
        for result in results:
            stored = await self.artifacts.gate_result(result, parent=parent, tags=[f"branch:{branch}"])
            ids.append(stored.id)
        return tuple(ids)

    async def _commit(self, branch: str, head: str, candidate: str, tree: str, gate_ids: Sequence[str]) -> str:
        git = self.workspaces.git.with_env(self.workspaces.identity_env("merge-queue"))
        log_text = await git.out("log", "--reverse", "--format=%(trailers:only,unfold)", f"{head}..{candidate}", "--")
        pairs = []
        for line in log_text.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip():
                pairs.append((key.strip(), value.strip()))
        cited = Trailers.from_pairs(pairs)  # oldest commit first
        trailers = Trailers(
            requirements=cited.requirements,
            run_id=self.run_id or cited.run_id,
            artifact_ids=(*cited.artifact_ids, *[g for g in gate_ids if g not in cited.artifact_ids]),
            seed=cited.seed,
        )
        subject = f"Merge {branch} into {self.workspaces.integration_branch}"
        message = await with_trailers(git, f"{subject}\n\nChecked by the llama-orch merge queue.\n", trailers)
        return await git.out("commit-tree", tree, "-p", head, "-p", candidate, "-F", "-", input=message)


async def _is_ancestor(git: Git, maybe_ancestor: str, descendant: str) -> bool:
    result = await git("merge-base", "--is-ancestor", maybe_ancestor, descendant, check=False, ok_codes=(0, 1))
    if result.returncode not in (0, 1):
        raise GitError(("git", "merge-base", "--is-ancestor"), result.returncode, result.stderr)
    return result.returncode == 0
