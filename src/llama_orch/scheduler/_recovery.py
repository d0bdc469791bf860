"""Crash recovery: the task table and sessions rebuilt from what the journal kept.

What happens to each kind of task after a crash (or a graceful stop) and a restart on the same
data dir:

- **queued**: queued again, in its original admission order and class, and runs.
- **running, nothing delivered** (no ``token`` event was durable, so no client saw one): queued
  again and *re-run* from the start, ahead of later tasks. Its stream keeps the events it had
  (``metrics``, perhaps ``started``) and gets a second ``started``.
- **running, tokens delivered**: ends with a typed, retriable ``error`` event
  ``ORCHESTRATOR_RESTARTED`` after the events it had already emitted, which stay readable (a re-run
  would send different or repeated tokens to a client that has some).
- **finished**: kept readable for the rest of its retention, as before the crash.
- **not recoverable** (its row is damaged, its pool is no longer configured, its events were
  lost): ends with ``ORCHESTRATOR_RESTARTED`` (``details.recovered: false`` and why), logged and
  counted — never silently forgotten.

Sessions come back with their TTL (wall clock) and their budgets' usage (tokens, wall time, cost);
the reservations of the tasks queued again are taken again, and the usage of tasks that ended
before their session was updated is charged now (``settled``), so a crash never resets a budget.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import ValidationError

from llama_orch.core import Budget, Full, Session
from llama_orch.errors import AdmissionError, OrchError
from llama_orch.scheduler._store import Recovered, SessionRow, StoredTask
from llama_orch.scheduler._tasks import TaskRecord, TaskState
from llama_orch_api import ErrorCode, TaskRequest

if TYPE_CHECKING:
    from llama_orch.scheduler._orchestrator import Orchestrator

log = logging.getLogger("llama_orch.recovery")

_TERMINAL_EVENTS = (b"end", b"error")


@dataclass(slots=True)
class RecoveryReport:
    """What a start found in the journal and did with it."""

    requeued: int = 0
    rerun: int = 0
    interrupted: int = 0
    finished: int = 0
    sessions: int = 0
    unrecoverable: list[str] = field(default_factory=list)
    """Task ids that ended with ``recovered: false``."""
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.requeued or self.rerun or self.interrupted or self.finished or self.sessions or self.problems)

    def summary(self) -> str:
        parts = [
            f"{self.requeued} queued task(s) queued again",
            f"{self.rerun} running task(s) with nothing delivered re-run",
            f"{self.interrupted} running task(s) ended with ORCHESTRATOR_RESTARTED",
            f"{self.finished} finished task(s) still readable",
            f"{self.sessions} session(s)",
        ]
        if self.unrecoverable:
            parts.append(f"{len(self.unrecoverable)} task(s) could not be recovered")
        return "recovered from the task journal: " + ", ".join(parts)


def parse_frames(blob: bytes) -> tuple[list[bytes], int, str | None]:
    """The frames of an event log in order, the number of ``token`` events among them, and what
    was wrong (a truncated frame or a missing id) when not everything could be used."""
    frames: list[bytes] = []
    tokens = 0
    pos = 0
    while pos < len(blob):
        end = blob.find(b"\n\n", pos)
        if end < 0:
            return frames, tokens, f"a truncated event after event {len(frames)}"
        frame = blob[pos : end + 2]
        head, _, rest = frame.partition(b"\n")
        if head != b"id: %d" % (len(frames) + 1) or not rest.startswith(b"event: "):
            return frames, tokens, f"event {len(frames) + 1} is missing or damaged"
        if rest.startswith(b"event: token\n"):
            tokens += 1
        frames.append(frame)
        pos = end + 2
    return frames, tokens, None


def _event_name(frame: bytes) -> bytes:
    return frame.split(b"\n", 2)[1].removeprefix(b"event: ")


def restore_session(row: SessionRow, now: float, wall: float) -> Session:
    session = Session(
        row.session_id,
        now + (row.expires_wall - wall),
        turns=row.turns,
        tokens_used=row.tokens_used,
        pool=row.pool,
        replica=row.replica,
        kv_warm=row.kv_warm,
    )
    if row.budget is not None:
        b = row.budget
        session.budget = Budget(
            tokens_limit=None if b["tokens_limit"] is None else int(b["tokens_limit"]),
            wall_ms_limit=None if b["wall_ms_limit"] is None else int(b["wall_ms_limit"]),
            cost_limit=None if b["cost_limit"] is None else float(b["cost_limit"]),
            tokens_used=int(b["tokens_used"] or 0),
            wall_ms_used=float(b["wall_ms_used"] or 0.0),
            cost_used=float(b["cost_used"] or 0.0),
        )
    return session


def _unrecoverable_request() -> TaskRequest:
    return TaskRequest(prompt="", max_tokens=1)


def restore(orch: Orchestrator, recovered: Recovered) -> RecoveryReport:
    """Rebuild ``orch``'s sessions and task table from ``recovered`` (before pools start)."""
    journal = orch.journal
    assert journal is not None
    now, wall = time.monotonic(), time.time()
    report = RecoveryReport(problems=list(recovered.problems))
    for row in recovered.sessions:
        if row.expires_wall <= wall:
            journal.session_deleted(row.session_id)
            continue
        try:
            orch.sessions.restore(restore_session(row, now, wall))
            report.sessions += 1
        except (KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"session {row.session_id}: could not be restored ({exc})")
    journal.next_seq = max((t.row.seq for t in recovered.tasks), default=0) + 1
    for stored in recovered.tasks:
        _restore_task(orch, stored, report, now, wall)
    for task_id in recovered.lost_task_ids:
        if task_id not in orch.tasks:
            _unrecoverable(orch, task_id, None, "its admission record was lost from the damaged journal", report, now)
    return report


def _restore_task(orch: Orchestrator, stored: StoredTask, report: RecoveryReport, now: float, wall: float) -> None:
    row = stored.row
    frames, tokens, damage = parse_frames(stored.frames)
    if damage is not None:
        report.problems.append(f"task {row.task_id}: {damage}; the events before it are kept")
    try:
        request = TaskRequest.model_validate_json(row.body)
    except ValidationError as exc:
        _unrecoverable(
            orch, row.task_id, frames, f"its request could not be read ({exc.error_count()} error(s))", report, now
        )
        return
    pool = orch.pools.get(row.pool_id)
    if pool is None:
        _unrecoverable(orch, row.task_id, frames, f"its pool {row.pool_id!r} is no longer configured", report, now)
        return
    record = TaskRecord(
        row.task_id,
        request,
        row.pool_id,
        queue_position=row.queue_position,
        predicted_start_ms=row.predicted_start_ms,
        now=now - max(0.0, wall - row.admitted_wall),
    )
    record.frames = frames
    record.tokens_out = tokens
    record.readable = record.persisted = len(frames)
    record.seq = row.seq
    record.journal = orch.journal
    record.last_read = now  # give clients the orphan timeout to come back after the restart
    state = stored.state
    record.replica_id = state.replica_id if state else None
    record.settled = bool(state and state.settled)
    record.persisted_state = (state.state if state else "queued", record.replica_id, record.settled)
    orch.tasks[row.task_id] = record
    last_event = _event_name(frames[-1]) if frames else b""
    if last_event in _TERMINAL_EVENTS:
        if last_event == b"end":
            record.state = TaskState.done
        elif state is not None and state.state == TaskState.cancelled.value:
            record.state = TaskState.cancelled
        else:
            record.state = TaskState.failed
        finished = state.finished_wall if state and state.finished_wall is not None else wall
        record.finished_at = now - max(0.0, wall - finished)
        orch.finished_at(record)
        if not record.settled:
            orch.settle(record)
        if not stored.scrubbed and orch.journal is not None:
            orch.journal.scrub_later(record)  # a crash came between its end and its scrub at rest
        report.finished += 1
        return
    was_running = state is not None and state.state == TaskState.running.value
    if was_running and tokens > 0:
        _reserve(orch, record)
        record.state = TaskState.running
        record.finish_error(
            OrchError(
                ErrorCode.ORCHESTRATOR_RESTARTED,
                f"orchestratord restarted while the task ran, after {tokens} token(s); submit it again",
                retriable=True,
                retry_after_ms=1000,
                details={"tokens_delivered": tokens, "recovered": True},
            ).envelope()
        )
        orch.finished(record)
        report.interrupted += 1
        return
    if state is not None and state.state not in (TaskState.queued.value, TaskState.running.value) and damage is None:
        report.problems.append(f"task {row.task_id}: state {state.state!r} without its terminal event")
    record.state = TaskState.queued
    record.replica_id = None
    try:
        _reserve(orch, record, strict=True)
        pool.enqueue(record)
    except (AdmissionError, Full) as exc:
        reason = exc.message if isinstance(exc, OrchError) else f"the queue of pool {pool.pool_id!r} is full"
        record.finish_error(
            OrchError(
                ErrorCode.ORCHESTRATOR_RESTARTED,
                f"task could not be queued again after a restart: {reason}",
                retriable=True,
                retry_after_ms=1000,
                details={"recovered": False},
            ).envelope()
        )
        orch.finished(record)
        report.unrecoverable.append(row.task_id)
        return
    if was_running:
        report.rerun += 1
    else:
        report.requeued += 1


def _reserve(orch: Orchestrator, record: TaskRecord, *, strict: bool = False) -> None:
    """Take the task's budget reservation and session slot again (strict: refuse as admission would)."""
    session_id = record.request.session_id
    if session_id is None:
        return
    session = orch.sessions.touch(session_id, time.monotonic())
    try:
        orch.reserve(session, record.request, record.task_id, orch.pools[record.pool_id])
    except AdmissionError:
        if strict:
            raise
        session.in_flight += 1  # settled at its end like any other task (charged, never refunded)


def _unrecoverable(
    orch: Orchestrator, task_id: str, frames: list[bytes] | None, reason: str, report: RecoveryReport, now: float
) -> None:
    record = TaskRecord(task_id, _unrecoverable_request(), "", queue_position=0, predicted_start_ms=0, now=now)
    record.frames = list(frames or [])
    record.readable = record.persisted = len(record.frames)
    record.journal = orch.journal
    record.persisted_state = ("queued", None, False)
    record.settled = True  # nothing to charge: its session is unknown
    if record.frames and _event_name(record.frames[-1]) in _TERMINAL_EVENTS:
        record.finished_at = now
        record.state = TaskState.done if _event_name(record.frames[-1]) == b"end" else TaskState.failed
    else:
        record.finish_error(
            OrchError(
                ErrorCode.ORCHESTRATOR_RESTARTED,
                f"task could not be recovered after a restart: {reason}; submit it again",
                retriable=True,
                details={"recovered": False, "reason": reason},
            ).envelope()
        )
    orch.tasks[task_id] = record
    orch.finished_at(record)
    report.unrecoverable.append(task_id)
    log.error("task %s could not be recovered: %s", task_id, reason, extra={"task_id": task_id})


__all__ = ["RecoveryReport", "parse_frames", "restore"]
