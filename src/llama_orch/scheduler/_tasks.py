"""A task's life in the scheduler: its request, state and event log.

Every event a task emits is encoded once, in the ``text/event-stream`` format it is read in (a
format, not a transport: the server only writes the bytes), and kept in order; readers write
everything already there in one go. The event id is the frame's 1-based index, so a client
reconnecting with ``Last-Event-ID: n`` (or subscribing late) gets exactly frames ``n+1…``. Once a
terminal event (``end`` or ``error``) is in the log nothing more is ever appended: that single rule
makes cancel race-free.

Readers see the first :attr:`TaskRecord.readable` frames only. Without a journal that is every
frame at once; with one (:mod:`~llama_orch.scheduler._journal`) a frame becomes readable when the
group commit that holds it is durable, so no client ever sees an event that a crash could take
back: after a restart the log continues exactly where any reader could have been.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING

from llama_orch_api import ErrorEnvelope, TaskRequest

if TYPE_CHECKING:
    from llama_orch.scheduler._journal import Journal


class TaskState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is TaskState.done or self is TaskState.failed or self is TaskState.cancelled


def frame(event_id: int, event: str, data: str) -> bytes:
    """One SSE frame (``data`` is one line of JSON text)."""
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


# ``json.dumps(text)`` with its defaults is exactly ``encode_basestring_ascii(text)`` (the C
# encoder that ``JSONEncoder.encode`` calls for a str when ``ensure_ascii`` is on), without the
# two Python calls in front of it. Its output is ASCII, so a token frame is built as bytes.
# (The relay builds one per token; this way takes about 60% of the f-string-and-json.dumps time.)
_TOKEN_FRAME = b'id: %d\nevent: token\ndata: {"t":%b,"i":%d}\n\n'


_TOKEN_HEAD = '\nevent: token\ndata: {"t":'
"""What follows a token frame's id line (see _TOKEN_FRAME): its text, a JSON string, comes next."""


def redact_tokens(text: str, redact_pieces: Callable[[list[str]], list[str] | None]) -> str:
    """An event log (its frames' text) with the secrets of its token stream hidden, also those
    that no single frame holds: an engine's tokens are pieces of words, and ``sk-ab`` ``cd12…`` or a
    literal in three tokens is in no frame's text whole. ``redact_pieces`` (e.g.
    :meth:`~llama_orch.policy.Redactor.redact_pieces`) sees the tokens' decoded texts in order; a
    frame it changed is written again with its new text (same id and index, so the log keeps its
    frames); the other frames stay byte for byte."""
    # Frames hold no raw newline but their line ends (data is one line of JSON), so each
    # occurrence of the head is a token frame's; and a JSON string has no unescaped quote, so the
    # first ',"i":' after it ends the text's literal. Splitting on the head is C work, not a
    # regex's (~3x faster on a 2,000-token log).
    chunks = text.split(_TOKEN_HEAD)
    if len(chunks) == 1:
        return text
    literals = [chunk[: chunk.find(',"i":')] for chunk in chunks[1:]]
    try:
        tokens: list[str] = json.loads("[" + ",".join(literals) + "]")
    except ValueError:  # a log cut inside a token frame (salvaged): each frame is still redacted alone
        return text
    redacted = redact_pieces(tokens) if len(tokens) == len(literals) else None
    if redacted is None:
        return text
    for k, (literal, old, new) in enumerate(zip(literals, tokens, redacted, strict=True), start=1):
        if new != old:
            chunks[k] = encode_basestring_ascii(new) + chunks[k][len(literal) :]
    return _TOKEN_HEAD.join(chunks)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Reader:
    """One stream reader of a task's events: :meth:`wait` returns True when frames past its cursor
    are readable (or the task ended), False after ``heartbeat_s`` without a write (:meth:`wrote`).

    One future per wait and one timer per reader, armed when it waits with none armed and re-armed
    from the last write when it fires early: a timer per wait (created, scheduled, cancelled: one
    per SSE write at high token rates) was ~5% of orchestratord's CPU relaying 32,000 tokens/s.
    """

    __slots__ = ("_heartbeat", "_last", "_loop", "_record", "_timer", "_waiter")

    def __init__(self, record: TaskRecord, heartbeat_s: float) -> None:
        self._record = record
        self._heartbeat = heartbeat_s
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[bool] | None = None

    def wrote(self) -> None:
        """Something was written: silence is counted from now."""
        self._last = self._loop.time()

    async def wait(self, cursor: int) -> bool:
        record = self._record
        if cursor < record.readable or record.ended:
            return True
        waiter = self._waiter = record.add_waiter()
        if self._timer is None:
            self._timer = self._loop.call_at(self._last + self._heartbeat, self._beat)
        try:
            return await waiter
        finally:
            self._waiter = None
            record.drop_waiter(waiter)

    def _beat(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: armed again by the next wait
        due = self._last + self._heartbeat
        if self._loop.time() >= due:
            waiter.set_result(False)
        else:
            self._timer = self._loop.call_at(due, self._beat)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TaskRecord:
    __slots__ = (
        "_waiters",
        "admitted_at",
        "finished_at",
        "first_token_at",
        "frames",
        "journal",
        "kv_warm",
        "last_read",
        "persisted",
        "persisted_state",
        "pool_id",
        "predicted_start_ms",
        "queue_position",
        "readable",
        "readers",
        "replica_id",
        "request",
        "seq",
        "settled",
        "slot",
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
        self.slot: int | None = None
        """The engine slot it decodes in, when the engine's slots are pinned (KV reuse)."""
        self.kv_warm = False
        """It runs where its session's previous turn left the KV cache (same replica and slot)."""
        self.state = TaskState.queued
        self.tokens_out = 0
        self.frames: list[bytes] = []
        self.readable = 0
        """Frames readers may see (all of them without a journal; the durable ones with one)."""
        self._waiters: list[asyncio.Future[bool]] | None = None
        self.journal: Journal | None = None
        self.seq = 0
        """Admission order (journaled tasks)."""
        self.persisted = 0
        """Frames already handed to the journal."""
        self.persisted_state: tuple[str, str | None, bool] | None = None
        self.settled = False
        """Whether the session's budget and turns count this task (it ended and was settled)."""
        self.readers = 0
        """Streams open on this task now."""
        self.last_read: float | None = None
        """When a stream last read from it (monotonic); None: never."""

    @property
    def terminal(self) -> bool:
        """The task ended (its terminal event is in the log, readable or not yet)."""
        return self.finished_at is not None

    @property
    def ended(self) -> bool:
        """Readers have everything: the task ended and its terminal event is readable."""
        return self.finished_at is not None and self.readable == len(self.frames)

    def _notify(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def _publish(self) -> None:
        if self.journal is None:
            self.readable = len(self.frames)
            self._notify()
        else:
            self.journal.dirty(self)

    def make_readable(self, count: int) -> None:
        """The first ``count`` frames are durable (the journal says so): let readers have them."""
        if count > self.readable:
            self.readable = count
            self._notify()

    def emit(self, event: str, data: str) -> bool:
        """Append one event (``data`` is JSON text); False if the task already ended."""
        if self.finished_at is not None:
            return False
        self.frames.append(frame(len(self.frames) + 1, event, data))
        self._publish()
        return True

    def emit_tokens(self, tokens: list[str]) -> bool:
        """Append a batch of ``token`` events with one wake-up."""
        if self.finished_at is not None:
            return False
        frames = self.frames
        append = frames.append
        n = len(frames)
        i = self.tokens_out
        encode = encode_basestring_ascii
        for t in tokens:
            n += 1
            append(_TOKEN_FRAME % (n, encode(t).encode(), i))
            i += 1
        self.tokens_out = i
        self._publish()
        return True

    def finish(self, event: str, data: str, state: TaskState) -> bool:
        """Append the terminal event; False (and no change) if the task already ended."""
        if self.finished_at is not None:
            return False
        self.frames.append(frame(len(self.frames) + 1, event, data))
        self.finished_at = time.monotonic()
        self.state = state
        self._publish()
        return True

    def finish_error(self, envelope: ErrorEnvelope, state: TaskState = TaskState.failed) -> bool:
        return self.finish("error", envelope.model_dump_json(exclude_none=True), state)

    async def wait(self, cursor: int, within_s: float) -> bool:
        """Wait until there are readable frames past ``cursor`` or readers have everything;
        False on timeout. (A long-lived reader that waits per frame: :class:`Reader`.)"""
        if cursor < self.readable or self.ended:
            return True
        waiter = self.add_waiter()
        timer = asyncio.get_running_loop().call_later(within_s, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.drop_waiter(waiter)

    def add_waiter(self) -> asyncio.Future[bool]:
        """A future resolved True on the next new readable frames (or the end)."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        return waiter

    def drop_waiter(self, waiter: asyncio.Future[bool]) -> None:
        """Forget ``waiter`` if it was not notified (it timed out, or its reader went away)."""
        waiters = self._waiters
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
