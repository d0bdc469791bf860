"""The artifact store: content-addressed agent outputs (plans, summaries, diffs, traces, test
results) with tags and lineage, in SQLite (WAL) plus a content-addressed blob folder (OC-CLI-2301).

Ids are content addresses anyone can recompute::

    id = "sha256:" + sha256(rfc8785({"kind": kind, "content": content, "parent": parent_id_or_null})).hex()

with RFC 8785 (JSON Canonicalization Scheme) canonical JSON, UTF-8. Tags, session, task and media
type are not part of the id: storing the same output again returns the same artifact, with the new
tags merged in.

Pure storage, no HTTP: the server's ``/v1/artifacts`` routes and the orchestrator's per-task
records both go through :class:`ArtifactStore`::

    ref = await store.put(kind="trace", content={...}, tags=["task"], session_id=sid, task_id=tid)
"""

from __future__ import annotations

from llama_orch.artifacts._config import ArtifactsConfig
from llama_orch.artifacts._ids import artifact_id, normalize_id
from llama_orch.artifacts._store import DEFAULT_INLINE_MAX_BYTES, DEFAULT_MAX_BYTES, ArtifactStore

__all__ = [
    "DEFAULT_INLINE_MAX_BYTES",
    "DEFAULT_MAX_BYTES",
    "ArtifactStore",
    "ArtifactsConfig",
    "artifact_id",
    "normalize_id",
]
