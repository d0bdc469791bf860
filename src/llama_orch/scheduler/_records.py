"""Task records: every task, success or failure, leaves a ``trace`` artifact (DESIGN.md, step 4).

A record holds the request with the prompt redacted (its sha256 and length only), the seed,
sampler profile, engine and version, model and its catalog digest, timings, and the full SSE
transcript. Records are written off the request path by one writer task; the queue between them
is bounded, and a record that does not fit is counted and logged, never allowed to block
admission or decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from llama_orch.scheduler._background import Pacer
from llama_orch.scheduler._tasks import TaskRecord

log = logging.getLogger("llama_orch.records")

Content = dict[str, Any] | Callable[[], dict[str, Any]]
"""A record's content, or what builds it."""

Put = Callable[..., Awaitable[object]]
"""``ArtifactStore.put``-shaped: keyword arguments kind, content, tags, session_id, task_id."""


JSON_SAFE_INT = 2**53 - 1
"""Canonical JSON (RFC 8785, used for artifact ids) has no integers beyond this."""


def _json_int(value: int | None) -> int | str | None:
    return str(value) if value is not None and abs(value) > JSON_SAFE_INT else value


def redacted_request(record: TaskRecord) -> dict[str, Any]:
    """The task request as submitted, with prompt/inputs replaced by their digest and size."""
    request = record.request.model_dump(mode="json", exclude_none=True)
    if "seed" in request:
        request["seed"] = _json_int(record.request.seed)
    text = record.request.text()
    for key in ("prompt", "inputs"):
        request.pop(key, None)
    request["prompt_redacted"] = {
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "chars": len(text),
    }
    return request


def record_content(
    record: TaskRecord, *, engine: str, engine_version: str, model_ref: str, model_digest: str | None
) -> dict[str, Any]:
    started = record.started_at
    content: dict[str, Any] = {
        "task_id": record.task_id,
        "state": record.state.value,
        "request": redacted_request(record),
        "seed": _json_int(record.request.seed),
        "sampler_profile": record.request.sampler_profile_version,
        "pool": record.pool_id,
        "replica": record.replica_id,
        "engine": engine,
        "engine_version": engine_version,
        "model_ref": model_ref,
        "model_digest": model_digest,
        "metrics": {
            "queue_position": record.queue_position,
            "predicted_start_ms": record.predicted_start_ms,
            "waited_ms": None if started is None else round((started - record.admitted_at) * 1000, 3),
            "first_token_ms": None
            if started is None or record.first_token_at is None
            else round((record.first_token_at - started) * 1000, 3),
            "tokens_out": record.tokens_out,
            "total_ms": None
            if record.finished_at is None
            else round((record.finished_at - record.admitted_at) * 1000, 3),
        },
        "transcript": b"".join(record.frames).decode("utf-8", "replace"),
    }
    return content


class RecordWriter:
    """Writes task records through ``put`` from one background task."""

    def __init__(self, put: Put, *, max_pending: int = 10_000) -> None:
        self._put = put
        self._queue: asyncio.Queue[tuple[Content, TaskRecord]] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None
        self.pacer = Pacer()
        """Shared with the orchestrator's other background work: records yield to streaming tasks."""
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="task-records")

    def submit(self, content: Content, record: TaskRecord) -> None:
        """Queue ``record``'s record artifact: its content, or what builds it when its turn comes
        (an ended task's content is final; building it joins its whole transcript)."""
        try:
            self._queue.put_nowait((content, record))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "task record for %s dropped: %d records already waiting to be written",
                record.task_id,
                self._queue.qsize(),
                extra={"task_id": record.task_id},
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            content, record = await self._queue.get()
            wait = self.pacer.wait_s(loop.time(), self._queue.qsize() + 1)
            if wait:
                await asyncio.sleep(wait)
            started = loop.time()
            try:
                await self._put(
                    kind="trace",
                    content=content() if callable(content) else content,
                    tags=["task-record", f"pool:{record.pool_id}", f"state:{record.state.value}"],
                    session_id=record.request.session_id,
                    task_id=record.task_id,
                )
                self.written += 1
            except Exception:
                self.failed += 1
                log.exception("writing the task record of %s failed", record.task_id)
            finally:
                self._queue.task_done()
            self.pacer.ran(started, loop.time())

    async def aclose(self, flush_timeout_s: float = 10.0) -> None:
        """Write what is pending (bounded in time), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), flush_timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
