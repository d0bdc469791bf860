"""The orchestrator: the task table, admission across pools, sessions and budgets, retention,
the task journal and crash recovery, orphaned tasks.

It knows nothing of HTTP; the server's routes translate to and from it. Every decision is made by
``core`` (``matching_pools``/``check_limits``/``admit`` over the pools' snapshots, ``Budget``
reservations, ``SessionRegistry``); this class holds the state those decisions change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llama_orch.core import (
    SAMPLER_PROFILES,
    Budget,
    BudgetExceeded,
    Full,
    PoolLimits,
    Session,
    SessionRegistry,
    admit,
    backoff_ms,
    check_limits,
    match_key,
    matching_pools,
)
from llama_orch.core._predict import slot_init
from llama_orch.errors import AdmissionError, OrchError, QueueFullError
from llama_orch.pools import Inventory, detect
from llama_orch.scheduler import _views
from llama_orch.scheduler._background import Pacer
from llama_orch.scheduler._config import SchedulerSettings
from llama_orch.scheduler._journal import Journal
from llama_orch.scheduler._pool import Pool
from llama_orch.scheduler._records import RecordWriter, record_content
from llama_orch.scheduler._recovery import RecoveryReport, restore
from llama_orch.scheduler._registry import Registry
from llama_orch.scheduler._sqlite import SqliteStore
from llama_orch.scheduler._store import TaskStore
from llama_orch.scheduler._tasks import TaskRecord
from llama_orch_api import (
    Capabilities,
    ErrorCode,
    PoolHealth,
    ReplicaSetList,
    SessionInfo,
    TaskRequest,
)

log = logging.getLogger("llama_orch.orchestrator")

JOURNAL_FILE = "tasks.sqlite3"


@slot_init
@dataclass(frozen=True, slots=True)
class Admitted:
    """A queued task, as the 202 answer describes it (an :class:`AdmissionResponse` on the wire)."""

    task_id: str
    pool: str
    session_id: str | None
    queue_position: int
    predicted_start_ms: int
    backoff_ms: int
    priority: str = "interactive"
    """The task's class (not in the 202's body)."""

    @property
    def stream_url(self) -> str:
        return f"/v1/tasks/{self.task_id}/stream"

    def to_json(self) -> str:
        """Formatted directly (admission's hot path). Ids and pool names are validated identifiers
        (``[A-Za-z0-9._:-]``), so they need no escaping; a test checks this parses as the model."""
        session = "null" if self.session_id is None else f'"{self.session_id}"'
        return (
            f'{{"task_id":"{self.task_id}","pool":"{self.pool}","session_id":{session},'
            f'"queue_position":{self.queue_position},"predicted_start_ms":{self.predicted_start_ms},'
            f'"backoff_ms":{self.backoff_ms},"stream_url":"{self.stream_url}"}}'
        )


class AdmissionGate(Protocol):
    """What admission asks of a model catalog: raise an AdmissionError to refuse ``model_ref``."""

    def check_admissible(self, model_ref: str) -> None: ...

    def model_digest(self, model_ref: str) -> str | None: ...

    def drain_deadline(self, model_ref: str) -> float | None: ...


class Orchestrator:
    def __init__(self, settings: SchedulerSettings, *, store: TaskStore | None = None) -> None:
        """``store``: where tasks are journaled; by default SQLite in the data dir when there is one
        and ``journal.enabled`` (no journal otherwise: nothing outlives the process)."""
        self.settings = settings
        self.sessions = SessionRegistry(settings.sessions.ttl_s, settings.sessions.max_turns)
        self.tasks: dict[str, TaskRecord] = {}
        self._finished: dict[str, float] = {}
        self.pools: dict[str, Pool] = {
            p.id: Pool(
                p,
                on_finished=self._on_finished,
                session_of=lambda sid: self.sessions.get(sid, time.monotonic()),
                on_session_change=self._session_changed,
                metrics_interval_s=settings.metrics_interval_s,
                models=settings.models,
                data_dir=settings.data_dir,
            )
            for p in settings.pools
        }
        self._sweeper: asyncio.Task[None] | None = None
        self._match_cache: dict[tuple[object, ...], list[PoolLimits]] = {}
        self._orphan_floor = -math.inf
        """No unfinished task has been unread since before this (monotonic; see :meth:`cancel_orphans`)."""
        self.catalog: AdmissionGate | None = None
        """Set by the app when a model catalog is configured; consulted on every admission."""
        self.records: RecordWriter | None = None
        """Set by the app: where every finished task's record artifact goes."""
        self.registry = Registry(self.pools, settings.registry)
        """Replicas registered by pool-managerd hosts (they join their pools' placement)."""
        self.inventory: Inventory | None = None
        """This host's GPUs (NVML, detected at start unless set before): placement prefers the
        replica with the most free VRAM, and ``/v1/replicasets`` shows the readings."""
        if store is None and settings.data_dir is not None and settings.journal.enabled:
            path = Path(settings.data_dir).expanduser() / JOURNAL_FILE
            store = SqliteStore(path, synchronous=settings.journal.synchronous)
        self.journal = (
            Journal(store, commit_interval_s=settings.journal.commit_interval_ms / 1000) if store is not None else None
        )
        """Durable tasks, sessions and budgets; None without a data dir (or with the journal off)."""
        self.recovery: RecoveryReport | None = None
        """What the start found in the journal and did with it."""
        self._closing = False

    async def start(self) -> None:
        if self.inventory is None:
            self.inventory = await asyncio.to_thread(detect)
        await self.refresh_gpus()
        # A pool whose model cannot be provisioned stays unready (503 POOL_UNREADY), never hangs.
        await asyncio.gather(*(pool.provision_model() for pool in self.pools.values()))
        pacer = Pacer(self.streaming)  # records and scrubs keep to one share of the loop
        if self.records is not None:
            self.records.pacer = pacer
            self.records.start()
        if self.journal is not None:
            self.journal.pacer = pacer
            self.recovery = restore(self, await self.journal.store.recover())
            if not self.recovery.empty:
                log.info(self.recovery.summary(), extra={"narration": "crash recovery"})
            for problem in self.recovery.problems:
                log.error("task journal: %s", problem, extra={"narration": "not recovered"})
            self.journal.start()
        for pool in self.pools.values():
            await pool.start()
            pool.pump()  # tasks queued again by the recovery
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="sweeper")
        log.info(
            "orchestrator ready with pools %s",
            ", ".join(f"{p.pool_id} ({p.config.engine}, {p.total_slots} slots)" for p in self.pools.values()),
        )

    async def aclose(self) -> None:
        """Idempotent: end all tasks (retriable errors), stop the sweeper, close engines.

        With a journal, what is pending is written first and the shutdown's own errors are not:
        the next start recovers the queued and running tasks as after a crash."""
        self._closing = True
        if self.journal is not None:
            await self.journal.flush()
            await self.journal.scrub()  # what ended is scrubbed at rest now, not at the next start
            self.journal.freeze()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for pool in self.pools.values():
            await pool.aclose()
        if self.records is not None:
            await self.records.aclose()
        if self.journal is not None:
            await self.journal.aclose()
        if self.inventory is not None:
            self.inventory.close()

    # -- tasks ----------------------------------------------------------------------------------

    def submit(self, request: TaskRequest, body: bytes | None = None) -> Admitted:
        """Check guardrails, choose a pool, reserve the budget, queue. Raises :class:`OrchError` subclasses.

        ``body``: the request's JSON as received, journaled as is (else the model is serialized).
        With a journal the task is durable once :meth:`wait_durable` returns."""
        task_id = request.task_id or os.urandom(16).hex()
        if task_id in self.tasks:
            raise AdmissionError(ErrorCode.TASK_EXISTS, f"task {task_id!r} already exists")
        if request.sampler_profile_version not in SAMPLER_PROFILES:
            raise AdmissionError(
                ErrorCode.INVALID_PARAMS,
                f"unknown sampler profile {request.sampler_profile_version!r}",
                details={"known_profiles": sorted(SAMPLER_PROFILES)},
            )
        if request.budget is not None and request.session_id is None:
            raise AdmissionError(ErrorCode.INVALID_PARAMS, "a budget belongs to a session: set session_id too")
        key = match_key(request)
        matching = self._match_cache.get(key)
        if matching is None:
            matching = matching_pools(request, [p.limits for p in self.pools.values()])
            if len(self._match_cache) < 1024:  # bounded: keys come from clients
                self._match_cache[key] = matching
        candidates = check_limits(request, matching)
        now = time.monotonic()
        pools = self.pools
        if len(candidates) == 1:
            pool = pools[candidates[0].pool_id]
            decision = admit(request, (pool.snapshot(now),), now)
        else:
            decision = admit(request, [pools[c.pool_id].snapshot(now) for c in candidates], now)
            pool = pools[decision.pool_id]
        if self.catalog is not None:
            self.catalog.check_admissible(pool.model_ref)
        predicted_ms = decision.predicted_start_ms
        record = TaskRecord(task_id, request, pool.pool_id, queue_position=0, predicted_start_ms=predicted_ms, now=now)
        session = self.sessions.touch(request.session_id, now) if request.session_id is not None else None
        budget = self.reserve(session, request, task_id, pool) if session is not None else None
        try:
            pushed = pool.enqueue(record)
        except Full:
            if session is not None:
                session.in_flight = max(0, session.in_flight - 1)
            if budget is not None:
                budget.release(task_id)
            policy = pool.queue.policy.value
            raise QueueFullError(
                ErrorCode.ADMISSION_REJECT,
                f"pool {pool.pool_id!r} queue is full ({pool.queue.capacity} tasks, policy {policy})",
                retriable=True,
                retry_after_ms=pool.retry_after_ms(),
                policy_label=f"queue-full:{policy}",
                engine=pool.config.engine,
            ) from None
        record.queue_position = pushed.position
        self.tasks[task_id] = record
        if self.journal is not None:
            self.journal.admit(record, body or request.model_dump_json(exclude_none=True).encode(), wall=time.time())
            if session is not None:
                self.journal.session_changed(session)
        depth = len(pool.queue)
        on_time = ""
        if request.deadline_ms is not None:
            # P(start within the deadline), from the pool's recent start-prediction errors (OC-CLI-2703).
            p = pool.start_errors.on_time_probability(predicted_ms, request.deadline_ms)
            on_time = f',"on_time_probability":{p}'
        record.emit(
            "metrics",
            f'{{"queue_position":{pushed.position},"predicted_start_ms":{predicted_ms},"queue_depth":{depth}{on_time}}}',
        )
        pool.pump()
        depth, capacity = len(pool.queue), pool.queue.capacity
        backoff = backoff_ms(depth, capacity, pool.retry_after_ms()) if depth * 2 >= capacity else 0
        # str() of the StrEnum is its value (``.value`` is a Python-level property: slower).
        return Admitted(
            task_id, pool.pool_id, request.session_id, pushed.position, predicted_ms, backoff, str(request.priority)
        )

    def streaming(self) -> bool:
        """Whether any task is running now (background work yields to them)."""
        return any(pool.streaming for pool in self.pools.values())

    def pools_changed(self) -> None:
        """Call after a pool's model or limits change (reload): forget cached pool matches."""
        self._match_cache.clear()

    async def wait_durable(self, task_id: str) -> None:
        """Return once the admission of ``task_id`` (and all before it) is journaled. If the journal
        cannot be written, the task is cancelled and the error (``500 INTERNAL``) raised."""
        if self.journal is None:
            return
        try:
            await self.journal.committed()
        except OrchError:
            record = self.tasks.get(task_id)
            if record is not None and not record.terminal:
                self.pools[record.pool_id].cancel(record)
            raise

    def reserve(self, session: Session, request: TaskRequest, task_id: str, pool: Pool) -> Budget | None:
        """Reserve the task's worst case against the session's budget (set by its first task)."""
        if self.sessions.max_turns is not None and session.turns + session.in_flight >= self.sessions.max_turns:
            raise AdmissionError(
                ErrorCode.BUDGET_EXCEEDED,
                f"session {session.session_id!r} reached its limit of {self.sessions.max_turns} turns",
                details={"dimension": "turns"},
            )
        if session.budget is None:
            spec = request.budget or self.settings.sessions.default_budget
            if spec is not None:
                session.budget = Budget(tokens_limit=spec.tokens, wall_ms_limit=spec.wall_ms, cost_limit=spec.cost)
        budget = session.budget
        if budget is not None:
            price = pool.config.price_per_token
            try:
                budget.reserve(task_id, request.max_tokens, request.max_tokens * price)
            except BudgetExceeded as exc:
                raise AdmissionError(
                    ErrorCode.BUDGET_EXCEEDED,
                    exc.message,
                    details={"dimension": exc.dimension, "budget": _views.budget_info(budget).model_dump()},
                ) from None
        session.in_flight += 1
        return budget

    def budget_headers(self, session_id: str | None) -> dict[str, str]:
        """``X-Budget-*`` headers for a session with a budget (remaining amounts)."""
        session = self.sessions.get(session_id, time.monotonic()) if session_id else None
        if session is None or session.budget is None:
            return {}
        return _views.budget_headers(session.budget)

    def get_task(self, task_id: str) -> TaskRecord:
        record = self.tasks.get(task_id)
        if record is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no task {task_id!r} (unknown, or its events expired)")
        return record

    def cancel(self, task_id: str) -> None:
        record = self.get_task(task_id)
        if not record.terminal:
            self.pools[record.pool_id].cancel(record)

    def _session_changed(self, session: Session) -> None:
        if self.journal is not None:
            self.journal.session_changed(session)

    def finished_at(self, record: TaskRecord) -> None:
        """Keep ``record`` (ended) for the retention period, counted from when it ended."""
        self._finished[record.task_id] = record.finished_at or time.monotonic()

    def settle(self, record: TaskRecord) -> None:
        """Charge an ended task that holds no reservation (recovered) to its session."""
        sid = record.request.session_id
        session = self.sessions.get(sid, time.monotonic()) if sid is not None else None
        if session is not None and record.tokens_out:
            if session.budget is not None:
                price = self.pools[record.pool_id].config.price_per_token if record.pool_id in self.pools else 0.0
                session.budget.tokens_used += record.tokens_out
                session.budget.cost_used += record.tokens_out * price
            if record.replica_id is not None:
                self.sessions.record_turn(
                    session.session_id,
                    time.monotonic(),
                    pool=record.pool_id,
                    replica=record.replica_id,
                    tokens=record.tokens_out,
                )
            self._session_changed(session)
        self._mark_settled(record)

    def _mark_settled(self, record: TaskRecord) -> None:
        record.settled = True
        if record.journal is not None:
            record.journal.dirty(record)

    def finished(self, record: TaskRecord) -> None:
        """A task ended: keep it for retention, write its record, settle its session."""
        self._on_finished(record)

    def _on_finished(self, record: TaskRecord) -> None:
        now = time.monotonic()
        self._finished[record.task_id] = now
        if self._closing and self.journal is not None:
            return  # ended by the shutdown only: the next start recovers it
        if self.records is not None:
            pool = self.pools[record.pool_id]
            digest = self.catalog.model_digest(pool.model_ref) if self.catalog is not None else None
            # Built when the writer gets to it (background work, paced): the task's content is final.
            content = functools.partial(
                record_content,
                record,
                engine=pool.config.engine,
                engine_version=pool.engine_version,
                model_ref=pool.model_ref,
                model_digest=digest,
            )
            self.records.submit(content, record)
        sid = record.request.session_id
        session = self.sessions.get(sid, now) if sid is not None else None
        if session is None:
            self._mark_settled(record)
            return
        session.in_flight = max(0, session.in_flight - 1)
        if session.budget is not None:
            price = self.pools[record.pool_id].config.price_per_token
            session.budget.settle(record.task_id, record.tokens_out, record.tokens_out * price)
        if record.replica_id is not None and record.tokens_out:
            self.sessions.record_turn(
                session.session_id,
                now,
                pool=record.pool_id,
                replica=record.replica_id,
                tokens=record.tokens_out,
                slot=record.slot,
            )
        self._session_changed(session)
        self._mark_settled(record)

    def sweep(self, now: float) -> int:
        """Forget finished tasks past retention (and beyond the retained-count cap)."""
        retention = self.settings.event_retention_s
        cap = self.settings.max_retained_tasks
        forgotten = []
        for task_id, finished_at in list(self._finished.items()):
            if now - finished_at < retention and len(self._finished) <= cap:
                break
            del self._finished[task_id]
            self.tasks.pop(task_id, None)
            forgotten.append(task_id)
        expired = self.sessions.sweep_ids(now)
        if self.journal is not None:
            self.journal.forget(forgotten)
            for session_id in expired:
                self.journal.session_deleted(session_id)
        self.registry.expire(now)
        self._cut_retired()
        self.cancel_orphans(now)
        return len(forgotten)

    def cancel_orphans(self, now: float) -> list[str]:
        """Cancel tasks whose stream nobody has read for ``orphan_timeout_s`` (no stream open on
        them, none since they were admitted or last read); they free their queue place or slot."""
        timeout = self.settings.orphan_timeout_s
        if timeout is None:
            return []
        cutoff = now - timeout
        if cutoff <= self._orphan_floor:
            # No task can be an orphan yet: each unfinished one was unread since at least the floor,
            # or was read, or came, after the last scan (admitted_at and last_read are set from
            # time.monotonic() when they happen), so a scan would find none.
            return []
        floor = time.monotonic()
        orphans = []
        for r in self.tasks.values():
            if r.finished_at is None and r.readers == 0:
                since = r.last_read or r.admitted_at
                if since < floor:
                    floor = since  # orphans too: one still unfinished at the next scan is found again
                if since < cutoff:
                    orphans.append(r)
        self._orphan_floor = floor
        for record in orphans:
            log.info(
                "task %s: nobody read its stream for %g s; cancelling it (orphan_timeout_s)",
                record.task_id,
                timeout,
                extra={"task_id": record.task_id, "narration": "orphaned task cancelled"},
            )
            self.pools[record.pool_id].cancel(
                record,
                OrchError(
                    ErrorCode.CANCELLED,
                    f"nobody read the task's stream for {timeout:g} s (orphan_timeout_s); it was cancelled",
                    details={"reason": "orphaned"},
                ),
            )
        return [r.task_id for r in orphans]

    def _cut_retired(self) -> None:
        """End work on models whose retirement drain deadline has passed (MODEL_DEPRECATED)."""
        if self.catalog is None:
            return
        wall = time.time()
        for pool in self.pools.values():
            deadline = self.catalog.drain_deadline(pool.model_ref)
            if deadline is not None and deadline <= wall and (pool.queue or pool.running):
                ended = pool.abort_all(
                    OrchError(
                        ErrorCode.MODEL_DEPRECATED,
                        f"model {pool.model_ref!r} was retired and its drain deadline passed",
                    )
                )
                log.info("ended %d task(s) on retired model %s in pool %s", ended, pool.model_ref, pool.pool_id)

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(1.0, self.settings.event_retention_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())
            await self.refresh_gpus()

    async def refresh_gpus(self) -> None:
        """Read the GPU inventory (off the loop) into the local replicas that run on GPUs."""
        local = [r for pool in self.pools.values() for r in pool.replicas if r.devices and r.host is None]
        if not local or self.inventory is None:
            return
        readings = await asyncio.to_thread(self.inventory.devices)
        for replica in local:
            replica.gpus = tuple(g for g in readings if replica.devices and g.index in replica.devices)

    # -- sessions, capabilities, pools ----------------------------------------------------------

    def session_info(self, session_id: str) -> SessionInfo:
        now = time.monotonic()
        session = self.sessions.get(session_id, now)
        if session is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no session {session_id!r} (unknown or expired)")
        return _views.session_info(session, now, self.sessions.max_turns)

    def delete_session(self, session_id: str) -> None:
        if not self.sessions.delete(session_id, time.monotonic()):
            raise OrchError(ErrorCode.NOT_FOUND, f"no session {session_id!r} (unknown or expired)")
        if self.journal is not None:
            self.journal.session_deleted(session_id)

    def capabilities(self) -> Capabilities:
        return _views.capabilities(self.pools.values(), max_body_bytes=self.settings.max_body_bytes)

    def pool(self, pool_id: str) -> Pool:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no pool {pool_id!r}", details={"known_pools": sorted(self.pools)})
        return pool

    def pool_health(self, pool_id: str) -> PoolHealth:
        return _views.pool_health(self.pool(pool_id))

    def replicasets(self) -> ReplicaSetList:
        return _views.replicasets(self.pools.values(), time.monotonic())


__all__ = ["AdmissionGate", "Admitted", "Orchestrator"]
