"""The journal: group commits of task admissions, states, events and sessions to a :class:`TaskStore`.

Changes are collected as they happen (a task admitted, an event emitted, a state or a session
changed) and written together by one flusher task owned by the orchestrator: it wakes when there
is something to write, waits ``commit_interval_s`` more to gather whatever else arrives (every
admission of a busy loop iteration lands in the same commit), and hands the store one
:class:`Batch`. So a journal costs one transaction per batch, not per task or per token.

What waits for a commit:

- the ``202`` of an admission (:meth:`committed`): an admitted task is durable before the client
  hears of it;
- readers of a task's stream: a frame becomes readable (:meth:`TaskRecord.make_readable`) only
  once durable, so no client ever sees an event that a crash could take back.

A task that ends is scrubbed at rest (its request and event log replaced by their redacted forms,
see ``ScrubRow``) in later commits, a few milliseconds of redaction each, after the commit that
made its terminal event durable: redacting 32 event logs of 2,000 tokens in the commit that
carries their last frames held every stream's frames for as long. A crash in between leaves the
task's ``scrubbed`` flag unset, and recovery scrubs it again (:meth:`scrub_later`).

A write that fails is logged, its waiters get the error (the admission answers ``500``), the
changes are kept for the next batch, and the frames are made readable anyway: streams keep
flowing while the store is failing, without the guarantee. After :meth:`freeze` (graceful
shutdown) nothing more is written: the shutdown's own errors are not journaled, so tasks that
were queued or running are recovered at the next start exactly as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from llama_orch.core import Session
from llama_orch.errors import OrchError
from llama_orch.scheduler._background import Pacer
from llama_orch.scheduler._store import Batch, EventsRow, ScrubRow, SessionRow, TaskRow, TaskStateRow, TaskStore
from llama_orch.scheduler._tasks import TaskRecord, TaskState, redact_tokens
from llama_orch_api import ErrorCode

log = logging.getLogger("llama_orch.journal")

FAILED_WRITE_BACKOFF_S = 0.2
SCRUB_SLICE_S = 0.002
"""Redaction done per scrub commit (at least one task), so streams and admissions run in between."""


def session_row(session: Session, now: float, wall: float) -> SessionRow:
    budget = session.budget
    return SessionRow(
        session.session_id,
        wall + (session.expires_at - now),
        session.turns,
        session.tokens_used,
        session.pool,
        session.replica,
        session.kv_warm,
        None
        if budget is None
        else {
            "tokens_limit": budget.tokens_limit,
            "wall_ms_limit": budget.wall_ms_limit,
            "cost_limit": budget.cost_limit,
            "tokens_used": budget.tokens_used,
            "wall_ms_used": budget.wall_ms_used,
            "cost_used": budget.cost_used,
        },
    )


class Journal:
    """Collects changes and group-commits them to ``store`` (see the module docstring)."""

    def __init__(
        self, store: TaskStore, *, commit_interval_s: float = 0.001, redact: Callable[[str], str] | None = None
    ) -> None:
        self.store = store
        self.redact = redact
        """Applied to an ended task's request and event log before they stay at rest (see ``ScrubRow``)."""
        self.redact_pieces: Callable[[list[str]], list[str] | None] | None = None
        """Applied (first) to the texts of an ended task's token frames, in order, for the secrets split
        across tokens (see :func:`redact_tokens`); None: each frame's text is redacted alone."""
        self.commit_interval_s = commit_interval_s
        self.next_seq = 1
        self.commits = 0
        self.failures = 0
        self._admitted: list[TaskRow] = []
        self._dirty: dict[str, TaskRecord] = {}
        self._sessions: dict[str, Session] = {}
        self._deleted_sessions: set[str] = set()
        self._forgotten: list[str] = []
        self._to_scrub: dict[str, TaskRecord] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._frozen = False
        self.pacer = Pacer()
        """Shared with the orchestrator's other background work: scrubs yield to streaming tasks."""

    # -- collecting -----------------------------------------------------------------------------

    def admit(self, record: TaskRecord, body: bytes, *, wall: float) -> None:
        """Journal a newly admitted task (its events follow through :meth:`dirty`)."""
        record.seq = self.next_seq
        self.next_seq += 1
        record.journal = self
        if self._frozen:
            return
        self._admitted.append(
            TaskRow(
                record.task_id, record.seq, record.pool_id, body, wall, record.queue_position, record.predicted_start_ms
            )
        )
        # str() of the StrEnum is its value (``.value`` is a Python-level property: slower).
        record.persisted_state = (str(record.state), record.replica_id, record.settled)
        self.dirty(record)

    def dirty(self, record: TaskRecord) -> None:
        """``record`` has new frames or a new state."""
        if self._frozen:
            record.make_readable(len(record.frames))
            return
        self._dirty[record.task_id] = record
        self._wake.set()

    def session_changed(self, session: Session) -> None:
        if self._frozen:
            return
        self._deleted_sessions.discard(session.session_id)
        self._sessions[session.session_id] = session
        self._wake.set()

    def session_deleted(self, session_id: str) -> None:
        if self._frozen:
            return
        self._sessions.pop(session_id, None)
        self._deleted_sessions.add(session_id)
        self._wake.set()

    def forget(self, task_ids: list[str]) -> None:
        """Tasks past retention: drop them from the store."""
        if self._frozen or not task_ids:
            return
        for task_id in task_ids:
            self._to_scrub.pop(task_id, None)  # gone anyway
        self._forgotten.extend(task_ids)
        self._wake.set()

    def scrub_later(self, record: TaskRecord) -> None:
        """Scrub an ended task at rest (recovery: one whose scrub a crash cut off)."""
        if self._frozen or self.redact is None:
            return
        self._to_scrub[record.task_id] = record
        self._wake.set()

    @property
    def scrubs_pending(self) -> int:
        return len(self._to_scrub)

    def committed(self) -> asyncio.Future[None]:
        """Resolved once everything collected so far is durable (raises what a failed write raised)."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._waiter

    # -- writing --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="journal")

    async def _run(self) -> None:
        while True:
            if self._wake.is_set() or not self._scrubbable():
                await self._wake.wait()
                if self.commit_interval_s > 0:
                    await asyncio.sleep(self.commit_interval_s)
                self._wake.clear()
                if not await self.flush():
                    await asyncio.sleep(FAILED_WRITE_BACKOFF_S)
                    self._wake.set()
                    continue
            if self._to_scrub:
                loop = asyncio.get_running_loop()
                wait = self.pacer.wait_s(loop.time(), len(self._to_scrub))
                if wait > 0:  # paced while tasks stream: commits (and the tokens they free) go first
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    continue
                await asyncio.sleep(0)  # what the last commit made readable goes out first
                started = loop.time()
                if not await self.scrub(SCRUB_SLICE_S):
                    await asyncio.sleep(FAILED_WRITE_BACKOFF_S)
                self.pacer.ran(started, loop.time())

    def _take(self) -> tuple[Batch, list[tuple[TaskRecord, int, int, tuple[str, str | None, bool] | None]]]:
        now, wall = time.monotonic(), time.time()
        batch = Batch(admitted=self._admitted, forgotten_tasks=self._forgotten)
        self._admitted, self._forgotten = [], []
        taken = []
        for record in self._dirty.values():
            count, before, before_state = len(record.frames), record.persisted, record.persisted_state
            state = (str(record.state), record.replica_id, record.settled)
            ends_now = record.state.terminal and (before_state is None or not TaskState(before_state[0]).terminal)
            if ends_now and self.redact is not None:
                self._to_scrub[record.task_id] = record  # once this batch is written (see scrub)
            if count > before:
                batch.events.append(EventsRow(record.task_id, before + 1, b"".join(record.frames[before:count])))
                record.persisted = count
            if state != before_state:
                finished = None if record.finished_at is None else wall - (now - record.finished_at)
                batch.states.append(TaskStateRow(record.task_id, state[0], state[1], state[2], finished))
                record.persisted_state = state
            taken.append((record, count, before, before_state))
        self._dirty.clear()
        batch.sessions = [session_row(s, now, wall) for s in self._sessions.values()]
        batch.deleted_sessions = sorted(self._deleted_sessions)
        self._sessions.clear()
        self._deleted_sessions.clear()
        return batch, taken

    def _scrub(self, record: TaskRecord, count: int) -> ScrubRow:
        assert self.redact is not None
        body = self.redact(record.request.model_dump_json(exclude_none=True))
        text = b"".join(record.frames[:count]).decode("utf-8", "surrogateescape")
        frames = self.redact(redact_tokens(text, self.redact_pieces) if self.redact_pieces is not None else text)
        redacted = None if frames == text else frames.encode("utf-8", "surrogateescape")
        return ScrubRow(record.task_id, body.encode(), redacted)

    def _ready(self, record: TaskRecord) -> bool:
        return record.task_id not in self._dirty and record.persisted >= len(record.frames)

    def _scrubbable(self) -> bool:
        return any(self._ready(r) for r in self._to_scrub.values())

    async def scrub(self, budget_s: float | None = None) -> bool:
        """Scrub ended tasks whose every frame is durable, for about ``budget_s`` of redaction
        (at least one task; None: all of them), in one commit. False when the store failed."""
        if self._frozen or self.redact is None:
            self._to_scrub.clear()
            return True
        rows: list[ScrubRow] = []
        done: list[TaskRecord] = []
        started = time.perf_counter()
        for record in list(self._to_scrub.values()):
            if not self._ready(record):
                continue  # its last changes are not written yet: after the next commit
            rows.append(self._scrub(record, len(record.frames)))
            done.append(record)
            if budget_s is not None and time.perf_counter() - started >= budget_s:
                break
        if not rows:
            return True
        try:
            await self.store.write(Batch(scrubbed=rows))
        except Exception:
            self.failures += 1
            log.exception("the task journal could not be written (%d scrub(s) kept for the next try)", len(rows))
            return False
        self.commits += 1
        for record in done:
            if self._to_scrub.get(record.task_id) is record:
                del self._to_scrub[record.task_id]
        return True

    async def flush(self) -> bool:
        """Write everything collected now; False when the store failed (the changes are kept)."""
        waiter, self._waiter = self._waiter, None
        sessions, deleted = dict(self._sessions), set(self._deleted_sessions)
        batch, taken = self._take()
        try:
            if batch:
                await self.store.write(batch)
        except Exception as exc:
            self.failures += 1
            log.exception("the task journal could not be written (%d change(s) kept for the next try)", len(taken))
            self._keep(batch, taken, sessions, deleted)
            for record, count, _, _ in taken:
                record.make_readable(count)  # availability over the guarantee while the store fails
            if waiter is not None and not waiter.done():
                waiter.set_exception(
                    OrchError(ErrorCode.INTERNAL, f"the task journal could not be written: {type(exc).__name__}")
                )
            return False
        self.commits += 1
        for record, count, _, _ in taken:
            record.make_readable(count)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def _keep(
        self,
        batch: Batch,
        taken: list[tuple[TaskRecord, int, int, tuple[str, str | None, bool] | None]],
        sessions: dict[str, Session],
        deleted: set[str],
    ) -> None:
        self._admitted = batch.admitted + self._admitted
        self._forgotten = batch.forgotten_tasks + self._forgotten
        for record, _, before, before_state in taken:
            record.persisted, record.persisted_state = before, before_state
            self._dirty.setdefault(record.task_id, record)
        for session_id, session in sessions.items():
            self._sessions.setdefault(session_id, session)
        self._deleted_sessions |= deleted - set(self._sessions)

    def freeze(self) -> None:
        """Write nothing more (graceful shutdown, after the last :meth:`flush`)."""
        self._frozen = True

    async def aclose(self) -> None:
        """Write what is pending, stop the flusher, close the store."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if not self._frozen:
            await self.flush()
            await self.scrub()
            self.freeze()
        await self.store.aclose()


__all__ = ["Journal", "session_row"]
