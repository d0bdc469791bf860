"""The agents' record: every prompt (redacted), response, plan, edit set, gate result and merge decision.

Artifacts go to orchestratord's ``/v1/artifacts`` through the SDK. When there is no backend, when
it lacks the artifacts API, or when it cannot be reached, they go to a local journal (one JSON file
per artifact under ``<local_dir>/pending``) with the same content-addressed id, and :meth:`sync`
uploads them later, parents first. Uploading twice is harmless: the id is the content address, so
the server answers with the artifact it already has.

Lineage: an artifact whose parent is still only in the journal goes to the journal too, so that
nothing reaches the server before its parent does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import JsonValue, ValidationError

from llama_orch.agents._redact import redact_secrets
from llama_orch.artifacts import artifact_id
from llama_orch.client import (
    AsyncClient,
    IncompatibleServerError,
    InvalidParamsError,
    MethodNotAllowedError,
    NotFoundError,
    ProtocolError,
    ServerError,
    TransportError,
    UnavailableError,
)
from llama_orch_api import ArtifactCreate, ArtifactKind

if TYPE_CHECKING:
    from llama_orch.agents._gates import GateResult
    from llama_orch.agents._merge import MergeDecision

__all__ = ["AgentArtifacts", "StoredArtifact", "SyncReport"]

log = logging.getLogger("llama_orch.agents.artifacts")

# The backend cannot take it now, or has no artifacts API: keep it locally and sync later.
_FALLBACK_ERRORS = (
    TransportError,
    ServerError,
    UnavailableError,
    NotFoundError,
    MethodNotAllowedError,
    ProtocolError,
    IncompatibleServerError,
)


@dataclass(frozen=True)
class StoredArtifact:
    """Where an artifact went: ``remote`` (the orchestrator) or ``local`` (the journal, until :meth:`sync`)."""

    id: str
    kind: str
    where: Literal["remote", "local"]


@dataclass
class SyncReport:
    uploaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Artifact id → why it is still pending (its descendants wait with it)."""
    pending: int = 0
    """How many are still in the journal after this sync."""


class AgentArtifacts:
    """Record agent outputs as artifacts with lineage, remote first, local when it must.

    >>> async with AsyncClient(url) as client:                                   # doctest: +SKIP
    ...     record = AgentArtifacts(client, ".llorch/artifacts", session_id="loop-1")
    ...     prompt = await record.prompt(text, role="coder", model="gemma", seed=7)
    ...     answer = await record.response(reply, parent=prompt.id)
    ...     await record.sync()          # uploads whatever had to stay local
    """

    def __init__(
        self,
        client: AsyncClient | None,
        local_dir: str | os.PathLike[str],
        *,
        session_id: str | None = None,
        redact: Callable[[str], tuple[str, int]] = redact_secrets,
        remote_retry_s: float = 30.0,
    ) -> None:
        self.client = client
        self.local_dir = Path(local_dir)
        self.session_id = session_id
        self._redact = redact
        self._remote_retry_s = remote_retry_s
        self._remote_down_until = 0.0
        self._lock = asyncio.Lock()  # journal writes and sync, one at a time
        self._seq = 0

    @property
    def pending_dir(self) -> Path:
        return self.local_dir / "pending"

    # -- the generic call ------------------------------------------------------------------------

    async def put(
        self,
        kind: str,
        content: JsonValue,
        *,
        parent: str | None = None,
        tags: Iterable[str] = (),
        task_id: str | None = None,
        media_type: str | None = None,
    ) -> StoredArtifact:
        """Store one artifact: at the orchestrator when it takes it, else in the local journal."""
        try:
            request = ArtifactCreate(
                kind=ArtifactKind(kind),
                content=content,
                parent=parent,
                tags=sorted(set(tags)),
                session_id=self.session_id,
                task_id=task_id,
                media_type=media_type,
            )
        except ValidationError as exc:
            raise ValueError(f"invalid artifact: {exc}") from None
        expected = artifact_id(request.kind.value, request.content, request.parent)
        if self._remote_usable() and not (parent is not None and await self._is_pending(parent)):
            try:
                assert self.client is not None
                ref = await self.client.put_artifact(request)
            except InvalidParamsError:
                if parent is None or not await self._is_pending(parent):
                    raise
            except _FALLBACK_ERRORS as exc:
                self._remote_down(exc)
            else:
                if ref.id != expected:
                    log.warning("server id %s differs from the local content address %s", ref.id, expected)
                return StoredArtifact(ref.id, request.kind.value, "remote")
        await self._journal(expected, request)
        return StoredArtifact(expected, request.kind.value, "local")

    # -- what the agent loop records ---------------------------------------------------------------

    async def prompt(
        self,
        text: str,
        *,
        parent: str | None = None,
        role: str | None = None,
        model: str | None = None,
        seed: int | None = None,
        sampler_profile_version: str | None = None,
        task_id: str | None = None,
        tags: Sequence[str] = (),
    ) -> StoredArtifact:
        """A prompt, redacted before it leaves this process (``redactions`` says how many were hidden)."""
        redacted, count = self._redact(text)
        content: dict[str, JsonValue] = {
            "prompt": redacted,
            "redactions": count,
            "role": role,
            "model": model,
            "seed": seed,
            "sampler_profile_version": sampler_profile_version,
        }
        prompt_tags = ["agent:prompt", *_role(role), *tags]
        return await self.put("trace", content, parent=parent, tags=prompt_tags, task_id=task_id)

    async def response(
        self, text: str, *, parent: str | None, task_id: str | None = None, tags: Sequence[str] = ()
    ) -> StoredArtifact:
        """A model's answer, child of its prompt (redacted too: models echo what they were shown)."""
        redacted, count = self._redact(text)
        content: dict[str, JsonValue] = {"response": redacted, "redactions": count}
        return await self.put("trace", content, parent=parent, tags=["agent:response", *tags], task_id=task_id)

    async def plan(self, plan: JsonValue, *, parent: str | None, tags: Sequence[str] = ()) -> StoredArtifact:
        """A parsed plan, child of the response it was parsed from."""
        return await self.put("plan", plan, parent=parent, tags=["agent:plan", *tags])

    async def edit_set(self, edits: JsonValue, *, parent: str | None, tags: Sequence[str] = ()) -> StoredArtifact:
        """An edit set (a diff, or structured edits), child of its plan or response."""
        media = "text/x-diff" if isinstance(edits, str) else None
        return await self.put("diff", edits, parent=parent, tags=["agent:edit-set", *tags], media_type=media)

    async def gate_result(self, result: GateResult, *, parent: str | None, tags: Sequence[str] = ()) -> StoredArtifact:
        """A gate's outcome as a ``test-result`` artifact."""
        gate_tags = ["agent:gate-result", f"gate:{result.name}", f"status:{result.status}", *tags]
        return await self.put("test-result", _json(result.to_json()), parent=parent, tags=gate_tags)

    async def merge_decision(
        self, decision: MergeDecision, *, parent: str | None, tags: Sequence[str] = ()
    ) -> StoredArtifact:
        """What the merge queue decided, with the ids of the gate results it decided on."""
        decision_tags = ["agent:merge-decision", f"outcome:{decision.outcome}", *tags]
        return await self.put("summary", _json(decision.to_json()), parent=parent, tags=decision_tags)

    # -- the journal ---------------------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Ids stored locally and not yet uploaded, oldest first."""
        return [entry["id"] for _, entry in self._entries()]

    async def sync(self) -> SyncReport:
        """Upload the journal, parents before children; what the server took leaves the journal."""
        report = SyncReport()
        if self.client is None:
            report.pending = len(self.pending())
            return report
        async with self._lock:
            stuck: set[str] = set()
            entries = await asyncio.to_thread(self._entries)
            for path, entry in entries:
                parent = entry.get("parent")
                if parent in stuck:
                    stuck.add(entry["id"])
                    report.failed[entry["id"]] = f"waits for its parent {parent}"
                    continue
                try:
                    ref = await self.client.put_artifact(ArtifactCreate.model_validate(entry["request"]))
                except _FALLBACK_ERRORS as exc:
                    self._remote_down(exc)
                    report.failed[entry["id"]] = f"backend unavailable: {exc}"
                    break  # the rest would fail the same way; keep them for the next sync
                except InvalidParamsError as exc:
                    stuck.add(entry["id"])
                    report.failed[entry["id"]] = f"refused: {exc}"
                    continue
                if ref.id != entry["id"]:
                    log.warning("server id %s differs from the journal's %s", ref.id, entry["id"])
                await asyncio.to_thread(path.unlink, True)
                report.uploaded.append(entry["id"])
            else:
                self._remote_down_until = 0.0
        report.pending = len(await asyncio.to_thread(self.pending))
        return report

    async def _journal(self, artifact: str, request: ArtifactCreate) -> None:
        entry = {
            "id": artifact,
            "seq": 0,
            "request": request.model_dump(mode="json", exclude_none=True),
        }
        async with self._lock:
            self._seq += 1
            entry["seq"] = time.time_ns() * 1000 + self._seq % 1000
            await asyncio.to_thread(self._write, artifact, entry)

    def _write(self, artifact: str, entry: dict[str, Any]) -> None:
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        final = self.pending_dir / (artifact.removeprefix("sha256:") + ".json")
        if final.exists():
            return  # the same content and parent: the same artifact (its first tags stay; the server merges)
        temp = final.with_suffix(f".tmp{os.getpid()}")
        with temp.open("w") as handle:
            json.dump(entry, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)

    def _entries(self) -> list[tuple[Path, dict[str, Any]]]:
        if not self.pending_dir.is_dir():
            return []
        entries = []
        for path in self.pending_dir.glob("*.json"):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("unreadable journal entry %s: skipped", path)
                continue
            entries.append((path, entry))
        # Oldest first: a child is always journaled after its parent.
        return sorted(entries, key=lambda item: (item[1].get("seq", 0), item[1]["id"]))

    async def _is_pending(self, artifact: str) -> bool:
        path = self.pending_dir / (artifact.removeprefix("sha256:") + ".json")
        return await asyncio.to_thread(path.exists)

    def _remote_usable(self) -> bool:
        return self.client is not None and time.monotonic() >= self._remote_down_until

    def _remote_down(self, exc: Exception) -> None:
        self._remote_down_until = time.monotonic() + self._remote_retry_s
        log.warning(
            "artifacts backend unavailable (%s): keeping artifacts in %s until sync()",
            type(exc).__name__,
            self.pending_dir,
            extra={"narration": "artifacts go to the local journal for now"},
        )


def _role(role: str | None) -> list[str]:
    return [f"role:{role}"] if role else []


def _json(value: dict[str, Any]) -> JsonValue:
    converted: JsonValue = json.loads(json.dumps(value))
    return converted
