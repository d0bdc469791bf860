"""A task's life in the scheduler: its request, state and event log.

Every event a task emits is encoded once, in the ``text/event-stream`` format it is read in (a
format, not a transport: the server only writes the bytes), and kept in order; readers write
everything already there in one go. The
event id is the frame's 1-based index, so a client reconnecting with ``Last-Event-ID: n`` (or
subscribing late) gets exactly frames ``n+1…``. Once a terminal event (``end`` or ``error``) is in
the log nothing more is ever appended: that single rule makes cancel race-free.
"""

from __future__ import annotations

import asyncio
import json
import time
from enum import StrEnum

from llama_orch_api import ErrorEnvelope, TaskRequest


class TaskState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


def _frame(event_id: int, event: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


class TaskRecord:
    __slots__ = (
        "_wake",
        "admitted_at",
        "finished_at",
        "first_token_at",
        "frames",
        "pool_id",
        "predicted_start_ms",
        "queue_position",
        "replica_id",
        "request",
        "started_at",
        "state",
        "task_id",
        "tokens_out",
    )

    def __init__(
        self,
        task_id: str,
        request: TaskRequest,
        pool_id: str,
        *,
        queue_position: int,
        predicted_start_ms: int,
        now: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.request = request
        self.pool_id = pool_id
        self.queue_position = queue_position
        self.predicted_start_ms = predicted_start_ms
        self.admitted_at = time.monotonic() if now is None else now
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.replica_id: str | None = None
        self.state = TaskState.queued
        self.tokens_out = 0
        self.frames: list[bytes] = []
        self._wake: asyncio.Future[None] | None = None

    @property
    def terminal(self) -> bool:
        return self.finished_at is not None

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def emit(self, event: str, data: str) -> bool:
        """Append one event (``data`` is JSON text); False if the task already ended."""
        if self.finished_at is not None:
            return False
        self.frames.append(_frame(len(self.frames) + 1, event, data))
        self._notify()
        return True

    def emit_tokens(self, tokens: list[str]) -> bool:
        """Append a batch of ``token`` events with one wake-up."""
        if self.finished_at is not None:
            return False
        frames = self.frames
        i = self.tokens_out
        for t in tokens:
            frames.append(_frame(len(frames) + 1, "token", f'{{"t":{json.dumps(t)},"i":{i}}}'))
            i += 1
        self.tokens_out = i
        self._notify()
        return True

    def finish(self, event: str, data: str, state: TaskState) -> bool:
        """Append the terminal event; False (and no change) if the task already ended."""
        if self.finished_at is not None:
            return False
        self.frames.append(_frame(len(self.frames) + 1, event, data))
        self.finished_at = time.monotonic()
        self.state = state
        self._notify()
        return True

    def finish_error(self, envelope: ErrorEnvelope, state: TaskState = TaskState.failed) -> bool:
        return self.finish("error", envelope.model_dump_json(exclude_none=True), state)

    async def wait(self, cursor: int, within_s: float) -> bool:
        """Wait until there are frames past ``cursor`` or the task ended; False on timeout."""
        if cursor < len(self.frames) or self.finished_at is not None:
            return True
        if self._wake is None:
            self._wake = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._wake), within_s)
        except TimeoutError:
            return False
        return True
