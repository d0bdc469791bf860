"""The one store interface behind durable tasks, their events, sessions and budgets.

Nothing above this interface knows which store it has: :class:`~llama_orch.scheduler._journal.Journal`
hands it a :class:`Batch` of changes (one group commit) and, at start, asks it for everything
it kept (:meth:`TaskStore.recover`). SQLite (WAL) is the embedded default
(:class:`~llama_orch.scheduler._sqlite.SqliteStore`); a store for several orchestratord replicas
(PostgreSQL, Redis) implements the same three methods.

The contract a store keeps:

- :meth:`write` is atomic: after it returns, every change of the batch survives a crash of the
  process (SIGKILL); before, none of them is relied on. A failed write raises and keeps nothing.
- :meth:`recover` never raises for damaged data: what it could not read is listed in
  :attr:`Recovered.problems`, and everything else is returned.
- Deleted and replaced content is not left behind in the file (a scrubbed request or event
  log must not be readable afterwards from free pages).
- Rows are plain data (no scheduler objects), so a store needs no import from the scheduler
  beyond this module.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from llama_orch.core._predict import slot_init


@slot_init
@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task as admitted: written once, before its ``202``."""

    task_id: str
    seq: int
    """Admission order across all pools (queues are rebuilt in this order)."""
    pool_id: str
    body: bytes
    """The ``TaskRequest`` JSON as submitted."""
    admitted_wall: float
    """Unix time of admission."""
    queue_position: int
    predicted_start_ms: int


@slot_init
@dataclass(frozen=True, slots=True)
class TaskStateRow:
    """A task's latest state (upserted whenever it changes)."""

    task_id: str
    state: str
    replica_id: str | None
    settled: bool
    """Whether its session's budget and turns already count it (see ``Orchestrator._on_finished``)."""
    finished_wall: float | None


@slot_init
@dataclass(frozen=True, slots=True)
class EventsRow:
    """Frames ``first_id…`` of a task's event log, appended in order."""

    task_id: str
    first_id: int
    frames: bytes


@dataclass(frozen=True, slots=True)
class ScrubRow:
    """A task that ended: its request and whole event log replaced by their redacted forms (it
    will never run again, and what stays at rest for its retention holds no configured secret).
    Written in a batch after the one that holds its terminal event (see ``Journal``)."""

    task_id: str
    body: bytes
    frames: bytes | None
    """None: redaction changed nothing in the event log, which stays as it is (rewriting the rows of
    a task that streamed beside others rewrites every page they share: ~24 ms for 2,000 tokens)."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session with its budget: limits and what was used (reservations are not stored: the
    queued and running tasks that hold them are, and re-reserve on recovery)."""

    session_id: str
    expires_wall: float
    turns: int
    tokens_used: int
    pool: str | None
    replica: str | None
    kv_warm: bool
    budget: dict[str, float | int | None] | None
    """``tokens_limit``, ``wall_ms_limit``, ``cost_limit``, ``tokens_used``, ``wall_ms_used``, ``cost_used``."""


@dataclass(slots=True)
class Batch:
    """The changes of one group commit."""

    admitted: list[TaskRow] = field(default_factory=list)
    states: list[TaskStateRow] = field(default_factory=list)
    events: list[EventsRow] = field(default_factory=list)
    scrubbed: list[ScrubRow] = field(default_factory=list)
    """Applied after ``states`` and ``events``: replaces the task's body and all its events."""
    sessions: list[SessionRow] = field(default_factory=list)
    deleted_sessions: list[str] = field(default_factory=list)
    forgotten_tasks: list[str] = field(default_factory=list)
    """Tasks past retention: their rows and events go."""

    def __bool__(self) -> bool:
        return bool(
            self.admitted
            or self.states
            or self.events
            or self.scrubbed
            or self.sessions
            or self.deleted_sessions
            or self.forgotten_tasks
        )


@dataclass(slots=True)
class StoredTask:
    """A task as recovered: its admission row, latest state and event log (frames in order)."""

    row: TaskRow
    state: TaskStateRow | None
    frames: bytes
    scrubbed: bool = False
    """Whether its ``ScrubRow`` was written (an ended task whose scrub a crash cut off is scrubbed again)."""


@dataclass(slots=True)
class Recovered:
    tasks: list[StoredTask] = field(default_factory=list)
    """In admission order."""
    sessions: list[SessionRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What could not be read, in words (a damaged file, unreadable rows)."""
    lost_task_ids: list[str] = field(default_factory=list)
    """Tasks known to exist (their events or state were read) whose admission row was lost."""


class TaskStore(abc.ABC):
    """Durable tasks, events, sessions and budgets (see the module docstring for the contract)."""

    @abc.abstractmethod
    async def recover(self) -> Recovered:
        """Everything kept, in admission order; opens the store (called once, first)."""

    @abc.abstractmethod
    async def write(self, batch: Batch) -> None:
        """Apply ``batch`` atomically and durably, or raise and apply nothing."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the store (the journal wrote its last batch)."""


__all__ = [
    "Batch",
    "EventsRow",
    "Recovered",
    "ScrubRow",
    "SessionRow",
    "StoredTask",
    "TaskRow",
    "TaskStateRow",
    "TaskStore",
]
