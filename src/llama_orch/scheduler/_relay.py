"""The relay: an engine's token stream copied into a task's event log, with timeouts.

The engine yields *batches* (every token already available); each batch becomes its ``token``
events with one wake-up of the readers, who write it in one go (coalescing is worth 3x, DESIGN.md).
The first batch must come within ``first_token_s`` and each next one within ``token_s``, else the
task ends with a retriable ``DECODE_TIMEOUT``. A stream that ends normally ends the task with
``end`` (``tokens_out``, ``decode_time_ms``, ``finish_reason``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from llama_orch.engines import StreamReport
from llama_orch.errors import EngineError
from llama_orch.scheduler._tasks import TaskRecord, TaskState
from llama_orch_api import EndEvent, ErrorCode


class _Silence:
    """Expires ``deadline`` once the engine has sent nothing for ``limit`` seconds.

    One timer per ``limit`` instead of one per batch: a batch only notes its time (``last``); the
    timer, when it fires, arms itself again at ``last + limit`` if something came meanwhile. (A
    timeout context per batch, created, scheduled and cancelled for every token, was ~6% of the
    relay's CPU at 32,000 tokens/s.)
    """

    __slots__ = ("_deadline", "_handle", "_loop", "last", "limit")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: asyncio.Timeout, limit: float) -> None:
        self._loop = loop
        self._deadline = deadline
        self.limit = limit
        self.last = loop.time()
        self._handle: asyncio.TimerHandle | None = loop.call_at(self.last + limit, self._check)

    def _check(self) -> None:
        due = self.last + self.limit
        if self._loop.time() >= due:
            self._handle = None
            self._deadline.reschedule(due)  # in the past: expires now
        else:
            self._handle = self._loop.call_at(due, self._check)

    def rearm(self, limit: float) -> None:
        """Silence is measured against ``limit`` from now on (from the last batch)."""
        self.limit = limit
        if self._handle is not None:
            self._handle.cancel()
            self._handle = self._loop.call_at(self.last + limit, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@dataclass(frozen=True, slots=True)
class RelayTimeouts:
    first_token_s: float
    token_s: float
    """Longest silence between two batches once tokens flow."""


async def relay(
    stream: AsyncGenerator[list[str], None],
    record: TaskRecord,
    timeouts: RelayTimeouts,
    *,
    engine: str,
    replica_id: str,
    on_batch: Callable[[float], None] | None = None,
    report: StreamReport | None = None,
) -> None:
    """Copy ``stream`` into ``record``'s events until the engine is done, then emit ``end``.

    ``on_batch(now)`` runs after each batch (budgets, metrics) and may raise to stop the task.
    Raises :class:`EngineError` (``DECODE_TIMEOUT``) and whatever the stream or ``on_batch`` raise;
    the caller ends the task with that error and closes the stream. Returns early, quietly, when
    the task ended meanwhile (cancelled): nothing is appended after a terminal event. ``report``
    (the engine request's) adds the engine's prompt and cached-prompt token counts to ``end``.
    """
    started_at = record.started_at or time.monotonic()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as deadline:
            silence = _Silence(loop, deadline, timeouts.first_token_s)
            try:
                async for batch in stream:
                    silence.last = loop.time()
                    if record.first_token_at is None:
                        record.first_token_at = time.monotonic()
                        silence.rearm(timeouts.token_s)
                    if not record.emit_tokens(batch):
                        return
                    if on_batch is not None:
                        on_batch(time.monotonic())
            finally:
                silence.stop()
    except TimeoutError as exc:
        raise EngineError(
            ErrorCode.DECODE_TIMEOUT,
            f"engine sent nothing for {silence.limit:g} s on replica {replica_id}",
            engine=engine,
            retriable=True,
            retry_after_ms=1000,
        ) from exc
    decode_ms = int((time.monotonic() - (record.first_token_at or started_at)) * 1000)
    finish = "length" if record.tokens_out >= record.request.max_tokens else "stop"
    end = EndEvent(
        tokens_out=record.tokens_out,
        decode_time_ms=decode_ms,
        finish_reason=report.finish_reason if report is not None and report.finish_reason else finish,
        prompt_tokens=report.prompt_tokens if report is not None else None,
        cached_tokens=report.cached_tokens if report is not None else None,
    )
    record.finish("end", end.model_dump_json(exclude_none=True), TaskState.done)


__all__ = ["RelayTimeouts", "relay"]
