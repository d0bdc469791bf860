"""A pool at run time: its bounded queue, its replica set, and the dispatcher that feeds them.

Dispatch is event-driven: :meth:`Pool.pump` runs whenever a task is queued, a slot frees or a
replica becomes ready, and starts queued tasks while slots are free. Each started task runs as an
asyncio task owned by the pool (cancelled on shutdown or by a client's cancel); nothing is
fire-and-forget. The relay (:func:`~llama_orch.scheduler._relay.relay`) copies the engine's
stream into the task's events.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from llama_orch.core import (
    SAMPLER_PROFILES,
    BoundedPriorityQueue,
    Budget,
    PoolLimits,
    PoolSnapshot,
    PoolState,
    Pushed,
    QueueLoad,
    RunningTask,
    ServiceEstimator,
    Session,
    SloWindow,
    head_needed,
    predict_new,
)
from llama_orch.engines import ChatMessage, Engine, EngineRequest, StreamReport
from llama_orch.errors import ConfigError, EngineError, ModelUnavailable, OrchError
from llama_orch.pools import ModelsConfig, PoolConfig, build_engine, resolve_model
from llama_orch.scheduler._dispatch import Dispatcher
from llama_orch.scheduler._relay import RelayTimeouts, relay
from llama_orch.scheduler._replicas import Replica, ReplicaSet
from llama_orch.scheduler._tasks import TaskRecord, TaskState
from llama_orch.telemetry import StartErrors
from llama_orch_api import Determinism, EndEvent, ErrorCode, Priority, StartedEvent, TaskRequest, Workload

log = logging.getLogger("llama_orch.pool")

_EMPTY_LOAD = QueueLoad((), 0, 0, 0, 0, 0, (), (), 0, 1)
_INTERACTIVE, _BATCH = Priority.interactive, Priority.batch


class Pool:
    """Queue + replicas + dispatcher for one configured pool."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        on_finished: Callable[[TaskRecord], None],
        session_of: Callable[[str], Session | None],
        on_session_change: Callable[[Session], None] | None = None,
        metrics_interval_s: float = 1.0,
        models: ModelsConfig | None = None,
        data_dir: str | None = None,
    ) -> None:
        self.config = config
        self.queue: BoundedPriorityQueue[TaskRecord] = BoundedPriorityQueue(config.queue.capacity, config.queue.policy)
        self.model_ref = config.model_ref
        self.replica_set = ReplicaSet(config, self._replica_changed)
        self.replica_set.replicas = self.replica_set.build(config.model_ref)
        self.dispatcher = Dispatcher(config.id)
        # With no local replica (only registered remote ones serve it), describe an unstarted engine.
        info = (self.replicas[0].engine if self.replicas else build_engine(config)).describe()
        self.engine_version = info.version
        self.ctx_max = config.ctx_max or info.ctx_max
        modes = frozenset(config.determinism) if config.determinism is not None else info.determinism
        self.determinism = modes | {Determinism.best_effort}
        self.state = PoolState.ready
        """Only a ready (or reloading) pool admits."""
        self.last_error: str | None = None
        self.drain_deadline_ms: int | None = None
        self.model_path: Path | None = None
        """The local model file once provisioned (see :meth:`provision_model`)."""
        self.unready_error: OrchError | None = None
        """While ``state`` is ``unready``: why (the model could not be provisioned, no replica left)."""
        self._unready_for_replicas = False
        """Unready because no replica could serve (it becomes ready again when one comes back)."""
        self._models = models or ModelsConfig()
        self._data_dir = data_dir
        self.slo = SloWindow()
        self.start_errors = StartErrors()
        """How wrong start predictions were (actual minus predicted wait): the on-time probability."""
        self.limits = self._compute_limits()
        if config.engine == "mock":
            rate = config.mock.tokens_per_s
            self.estimator = ServiceEstimator(
                first_token_ms=config.mock.first_token_ms + config.mock.faults.slow_start_ms,
                ms_per_token=0.01 if rate is None else 1000.0 / rate,
            )
        else:
            self.estimator = ServiceEstimator(first_token_ms=200.0, ms_per_token=20.0)
        self.timeouts = RelayTimeouts(config.first_token_timeout_s, config.token_timeout_s)
        self._queued_tokens = {Priority.interactive: 0, Priority.batch: 0}
        self._heads: tuple[int, int, tuple[int, ...], tuple[int, ...]] | None = None
        """(ready slots, head_needed, head_interactive, head_batch) of the last :meth:`load`; None once the
        queue's head may have changed (a pop or removal; a push into a lane shorter than the head)."""
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._on_finished = on_finished
        self._session_of = session_of
        self._session_changed = on_session_change
        self._metrics_interval_s = metrics_interval_s
        self._closing = False

    @property
    def pool_id(self) -> str:
        return self.config.id

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def admits(self) -> bool:
        return self.state.admits and not self._closing

    @property
    def replicas(self) -> list[Replica]:
        return self.replica_set.replicas

    @property
    def generation(self) -> int:
        return self.replica_set.generation

    @property
    def running(self) -> list[TaskRecord]:
        return self.replica_set.running

    @property
    def streaming(self) -> bool:
        """Whether a task of this pool is running now."""
        return bool(self._runners)

    @property
    def total_slots(self) -> int:
        return self.replica_set.total_slots

    @property
    def active(self) -> int:
        return self.replica_set.active

    # -- models and replicas --------------------------------------------------------------------

    def needs_model_file(self, model_ref: str) -> bool:
        """Whether this pool's engine loads ``model_ref`` from a local file (an engine at an
        external endpoint has its own; ``mock:*`` refs are no file; the in-process mock loads a
        real ref's file as llama.cpp would)."""
        return self.config.endpoint is None and not model_ref.startswith("mock:")

    async def fetch_model(self, model_ref: str) -> Path | None:
        """The local file of ``model_ref`` (fetched when the models policy allows), or None when
        this pool's engine needs no file. Raises ModelUnavailable / ModelFetchForbidden / ConfigError."""
        if not self.needs_model_file(model_ref):
            return None
        return await resolve_model(
            model_ref,
            cache_dir=self._models.cache_path(self._data_dir),
            allow_network=self._models.allow_network,
            max_bytes=self._models.max_bytes,
        )

    async def provision_model(self) -> Path | None:
        """Resolve the pool's model at start. On failure the pool is ``unready`` (it admits
        nothing; admission answers ``503 POOL_UNREADY`` with :attr:`unready_error`)."""
        try:
            path = await self.fetch_model(self.model_ref)
        except (ModelUnavailable, ConfigError) as exc:
            error = exc if isinstance(exc, OrchError) else ModelUnavailable(str(exc))
            self.state = PoolState.unready
            self.unready_error = OrchError(
                ErrorCode.POOL_UNREADY,
                f"pool {self.pool_id!r} is not ready: {error.message}",
                retriable=error.retriable,
                retry_after_ms=error.retry_after_ms,
                details={**(error.details or {}), "pool": self.pool_id, "model_ref": self.model_ref},
            )
            self.last_error = error.message
            log.warning(
                "pool %s stays unready: %s",
                self.pool_id,
                error.message,
                extra={"pool": self.pool_id, "narration": "model not provisioned"},
            )
            return None
        self.model_path = path
        return path

    def _compute_limits(self) -> PoolLimits:
        max_tokens = self.config.max_tokens
        if max_tokens > self.ctx_max:  # only an engine at an endpoint can say so this late
            log.warning(
                "pool %s: max_tokens %d is above the engine's context of %d tokens; capping it there",
                self.pool_id,
                max_tokens,
                self.ctx_max,
                extra={"pool": self.pool_id, "narration": "max_tokens capped to the context"},
            )
            max_tokens = self.ctx_max
        return PoolLimits(
            pool_id=self.config.id,
            engine=self.config.engine,
            model_ref=self.model_ref,
            ctx_max=self.ctx_max,
            max_tokens=max_tokens,
            workloads=frozenset(self.config.workloads),
            determinism=self.determinism,
        )

    def new_replicas(self, model_ref: str) -> list[Replica]:
        """Fresh (unstarted) replicas for ``model_ref``; ids carry the generation so reloads never reuse one."""
        return self.replica_set.build(model_ref)

    async def start(self) -> None:
        """Start the replicas; managed ones are awaited until Ready (health and a probe decode).
        A pool none of whose replicas gets Ready is ``unready``, with the reason in ``last_error``."""
        if self.state is PoolState.unready:  # its model could not be provisioned
            return
        errors = await self.start_replicas(self.replicas, self.model_path)
        if errors and not any(r.ready for r in self.replicas):
            self._become_unready(errors[0], replicas_gone=True)
        elif errors:
            self.last_error = errors[0]

    async def start_replicas(self, replicas: list[Replica], model_path: Path | None) -> list[str]:
        """Start ``replicas`` (at once); why each one that did not get Ready failed."""
        errors = await self.replica_set.start(replicas, model_path)
        if replicas and replicas[0] in self.replicas and any(r.ready for r in replicas):
            self.describe_engine(replicas[0].engine)
        return errors

    def describe_engine(self, engine: Engine) -> None:
        """What a started engine said about itself (version, context) becomes the pool's."""
        info = engine.describe()
        self.engine_version = info.version
        self.ctx_max = self.config.ctx_max or info.ctx_max
        modes = frozenset(self.config.determinism) if self.config.determinism is not None else info.determinism
        self.determinism = modes | {Determinism.best_effort}
        self.limits = self._compute_limits()

    def _become_unready(self, reason: str, *, replicas_gone: bool = False) -> None:
        self.state = PoolState.unready
        self._unready_for_replicas = replicas_gone
        self.last_error = reason
        self.unready_error = OrchError(
            ErrorCode.POOL_UNREADY,
            f"pool {self.pool_id!r} is not ready: {reason}",
            details={"pool": self.pool_id, "model_ref": self.model_ref},
        )
        log.error("pool %s is unready: %s", self.pool_id, reason, extra={"pool": self.pool_id, "narration": reason})
        # Nothing will serve the queue now: tell its tasks rather than leave them waiting.
        self.abort_all(
            OrchError(
                ErrorCode.POOL_UNAVAILABLE,
                f"pool {self.pool_id!r} has no replica left that can serve: {reason}",
                retriable=True,
                retry_after_ms=5000,
            )
        )

    def _replica_changed(self, replica: Replica) -> None:
        """A replica's engine changed state (Ready, crashed, restarting, failed), said through the seam."""
        if self._closing:
            return
        if not replica.ready and replica.engine.last_error:
            self.last_error = replica.engine.last_error
        if self.state is PoolState.ready and self.replica_set.all_gone():
            self._become_unready(self.last_error or "every replica failed", replicas_gone=True)
        elif self.state is PoolState.unready and self._unready_for_replicas and replica.ready:
            # A failed replica came back after its cool-down: the pool serves again.
            self.state, self.unready_error, self._unready_for_replicas = PoolState.ready, None, False
            self.describe_engine(replica.engine)
            log.info(
                "pool %s is ready again: replica %s is back",
                self.pool_id,
                replica.replica_id,
                extra={"pool": self.pool_id, "narration": "pool recovered"},
            )
        self.pump()

    def swap_replicas(self, fresh: list[Replica], model_ref: str) -> None:
        """Make ``fresh`` (started, healthy) the replicas; old ones finish their tasks, then close."""
        self.replica_set.swap(fresh)
        self.model_ref = model_ref
        self.limits = self._compute_limits()

    def add_replica(self, replica: Replica) -> None:
        """Serve from ``replica`` too (started; e.g. registered by a pool-managerd host)."""
        self.replica_set.add(replica)
        self.pump()

    def remove_replica(self, replica: Replica) -> None:
        """Stop placing tasks on ``replica``; tasks running there finish, then its engine closes."""
        self.replica_set.remove(replica)

    def set_ready(self, replica: Replica, ready: bool) -> None:
        """Mark ``replica`` able (or not) to take tasks; placement skips it while it is not.
        Tasks already running on it are the caller's business (its engine fails them)."""
        replica.ready = ready
        if ready:
            self.pump()

    async def aclose(self) -> None:
        """End every queued and running task with a retriable error, then close the engines."""
        if self._closing:
            return
        self._closing = True
        shutdown = OrchError(
            ErrorCode.POOL_UNAVAILABLE, "orchestratord is shutting down", retriable=True, retry_after_ms=1000
        )
        self._heads = None
        while (item := self.queue.pop()) is not None:
            item[1].finish_error(shutdown.envelope())
        for record in self.running:
            record.finish_error(shutdown.envelope())
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        await self.replica_set.aclose()

    def abort_all(self, error: OrchError) -> int:
        """End every queued and running task with ``error``; returns how many were ended."""
        ended = 0
        self._heads = None
        while (item := self.queue.pop()) is not None:
            record = item[1]
            self._queued_tokens[record.request.priority] -= record.request.max_tokens
            if record.finish_error(error.envelope()):
                ended += 1
            self._on_finished(record)
        for record in self.running:
            if record.finish_error(error.envelope()):
                ended += 1
            runner = self._runners.get(record.task_id)
            if runner is not None:
                runner.cancel()
        return ended

    async def wait_runners(self) -> None:
        """Wait for every task runner to finish its clean-up."""
        runners = list(self._runners.values())
        await asyncio.gather(*runners, return_exceptions=True)

    # -- admission ------------------------------------------------------------------------------

    def load(self, now: float) -> QueueLoad:
        """The slots and queue as start-time prediction reads them."""
        running: list[RunningTask] = []
        free = slots = 0
        for replica in self.replica_set.replicas:
            slots += replica.slots
            if not replica.ready:
                continue
            tasks = replica.running
            for rec in tasks.values():
                running.append(RunningTask(rec.started_at or now, rec.request.max_tokens, rec.tokens_out))
            free += max(0, replica.slots - len(tasks))
        queue = self.queue
        ready = len(running) + free
        heads = self._heads
        if heads is None or heads[0] != ready:
            # The queue's head changes on a pop or a removal, not on most pushes (see enqueue).
            n = head_needed(ready)
            heads = self._heads = (
                ready,
                n,
                tuple([rec.request.max_tokens for rec in queue.lane(_INTERACTIVE, n)]),
                tuple([rec.request.max_tokens for rec in queue.lane(_BATCH, n)]),
            )
        tokens = self._queued_tokens
        return QueueLoad(
            tuple(running),
            free,
            queue.depth(_INTERACTIVE),
            queue.depth(_BATCH),
            tokens[_INTERACTIVE],
            tokens[_BATCH],
            heads[2],
            heads[3],
            slots,
            queue.capacity,
        )

    def snapshot(self, now: float) -> PoolSnapshot:
        """The pool as admission (``core.admit``) sees it."""
        admits = self.state.admits and not self._closing
        return PoolSnapshot(
            self.limits,
            self.state,
            admits,
            self.load(now) if admits else _EMPTY_LOAD,
            self.estimator,
            self.unready_error,
        )

    def predict_new(self, priority: Priority, now: float) -> float:
        """Milliseconds until a task of ``priority`` submitted now would start."""
        return predict_new(self.load(now), priority, self.estimator, now)

    def retry_after_ms(self) -> int:
        """When a queue place is likely to free: the time for one slot to finish a typical task."""
        head = self.queue.peek()
        typical = self.estimator.service_ms(head[1].request.max_tokens if head else 128)
        return max(1, int(typical / max(1, self.total_slots)))

    def enqueue(self, record: TaskRecord) -> Pushed[TaskRecord]:
        """Queue ``record``; raises :class:`~llama_orch.core.Full`. Evicted records are ended here."""
        priority = record.request.priority
        pushed = self.queue.push(record.task_id, record, priority)
        self._queued_tokens[priority] += record.request.max_tokens
        heads = self._heads
        # Pushed behind a full head: the head is unchanged (a shorter one now lists this task too).
        if heads is not None and len(heads[2] if priority is _INTERACTIVE else heads[3]) < heads[1]:
            self._heads = None
        if pushed.evicted is not None:
            self._heads = None
            evicted = pushed.evicted[1]
            self._queued_tokens[evicted.request.priority] -= evicted.request.max_tokens
            evicted.finish_error(
                OrchError(
                    ErrorCode.QUEUE_FULL_DROP_LRU,
                    f"evicted from the full queue of pool {self.pool_id!r} by a newer task (policy drop-lru)",
                    retriable=True,
                    retry_after_ms=self.retry_after_ms(),
                    policy_label="drop-lru",
                ).envelope()
            )
            self._on_finished(evicted)
        return pushed

    def cancel(self, record: TaskRecord, error: OrchError | None = None) -> None:
        """End ``record`` as cancelled (by the client, unless ``error`` says otherwise); a queued
        task never starts, a running one emits nothing more."""
        if self.queue.remove(record.task_id) is not None:
            self._heads = None
            self._queued_tokens[record.request.priority] -= record.request.max_tokens
        error = error or OrchError(ErrorCode.CANCELLED, "task cancelled by the client")
        record.finish_error(error.envelope(), TaskState.cancelled)
        runner = self._runners.get(record.task_id)
        if runner is not None:
            runner.cancel()
        else:
            self._on_finished(record)

    # -- dispatch -------------------------------------------------------------------------------

    def pump(self) -> None:
        """Start queued tasks while a replica has a free slot."""
        if self._closing or self.state is PoolState.drained:
            return
        # Nothing starts without a ready replica with a free slot (Dispatcher.pick's first check):
        # a full pool answers here, as on every admission while it is busy.
        for free in self.replica_set.replicas:
            if free.ready and free.active < free.slots:
                break
        else:
            return
        now = time.monotonic()
        while self.queue:
            head = self.queue.peek()
            assert head is not None
            record = head[1]
            session = None
            if record.request.session_id is not None and _reuses_kv(record):
                session = self._session_of(record.request.session_id)
            session_replica = session.replica if session is not None else None
            replica = self.dispatcher.pick(self.replicas, record, session_replica)
            if replica is None:
                return
            self.queue.pop()
            self._heads = None
            self._queued_tokens[record.request.priority] -= record.request.max_tokens
            deadline = record.request.deadline_ms
            if deadline is not None and (now - record.admitted_at) * 1000 > deadline:
                record.finish_error(
                    OrchError(
                        ErrorCode.DEADLINE_UNMET,
                        f"task could not start within its deadline of {deadline} ms",
                        retriable=True,
                    ).envelope()
                )
                self._on_finished(record)
                continue
            self.dispatcher.claim(replica, record)
            warm_here = session is not None and session.kv_warm and session.replica == replica.replica_id
            record.slot = replica.pin_slot(record.task_id, session.slot if session is not None and warm_here else None)
            # Warm: the replica, and (where slots are pinned) the very slot, of the session's last turn.
            record.kv_warm = bool(
                warm_here and session is not None and (record.slot is None or record.slot == session.slot)
            )
            if session is not None and session.kv_warm and not record.kv_warm:
                log.info(
                    "task %s: session %s's KV cache is on %s slot %s, which is %s; running cold on %s slot %s",
                    record.task_id, session.session_id, session.replica, session.slot,
                    "busy" if warm_here else "not available", replica.replica_id, record.slot,
                    extra={"task_id": record.task_id, "narration": "kv cache cold"},
                )  # fmt: skip
            record.state = TaskState.running
            record.started_at = now
            record.replica_id = replica.replica_id
            runner = asyncio.get_running_loop().create_task(self._run(record, replica), name=f"task:{record.task_id}")
            self._runners[record.task_id] = runner
            runner.add_done_callback(functools.partial(self._runner_done, record, replica))

    async def _run(self, record: TaskRecord, replica: Replica) -> None:
        req = record.request
        started_at = record.started_at or time.monotonic()
        waited_ms = int((started_at - record.admitted_at) * 1000)
        if record.predicted_start_ms is not None:
            self.start_errors.record(record.predicted_start_ms, waited_ms)
        session = self._session_of(req.session_id) if req.session_id else None
        kv_warm = record.kv_warm
        budget = session.budget if session is not None else None
        record.emit(
            "started",
            StartedEvent(
                task_id=record.task_id,
                pool=self.pool_id,
                replica=replica.replica_id,
                queue_position=record.queue_position,
                predicted_start_ms=record.predicted_start_ms,
                waited_ms=waited_ms,
            ).model_dump_json(),
        )
        self._emit_metrics(record, kv_warm, budget)
        profile = SAMPLER_PROFILES[req.sampler_profile_version]
        engine_req = EngineRequest(
            task_id=record.task_id,
            prompt=req.text(),
            max_tokens=req.max_tokens,
            seed=req.seed,
            determinism=req.determinism,
            sampler_profile=profile.name,
            temperature=profile.temperature,
            top_p=profile.top_p,
            top_k=profile.top_k,
            messages=_chat_messages(req),
            stop=tuple(req.stop or ()),
            slot=record.slot,
            cache_prompt=_reuses_kv(record),
            report=StreamReport(),
        )
        stream = replica.engine.stream(engine_req)
        last_metrics = last_charge = started_at

        def after_batch(now: float) -> None:
            nonlocal last_metrics, last_charge
            if budget is not None:
                spent = not budget.charge_wall((now - last_charge) * 1000)
                last_charge = now
                if session is not None and self._session_changed is not None:
                    self._session_changed(session)
                if spent:
                    raise OrchError(
                        ErrorCode.BUDGET_EXCEEDED,
                        f"session {req.session_id!r} spent its wall-time budget after {record.tokens_out} tokens",
                        details={"dimension": "wall_ms"},
                    )
            if now - last_metrics >= self._metrics_interval_s:
                last_metrics = now
                self._emit_metrics(record, kv_warm, budget)

        try:
            if req.workload is Workload.embedding:
                await self._embed(record, replica)
                return
            await relay(
                stream,
                record,
                self.timeouts,
                engine=self.config.engine,
                replica_id=replica.replica_id,
                on_batch=after_batch,
                report=engine_req.report,
            )
        except EngineError as exc:
            exc.engine = exc.engine or self.config.engine
            if replica.ready:  # else its supervisor has set a better reason (the process died)
                self.last_error = f"{exc.code.value}: {exc.message}"
            record.finish_error(exc.envelope())
            log.warning(
                "task %s failed on replica %s: %s",
                record.task_id,
                replica.replica_id,
                exc.code.value,
                extra={"task_id": record.task_id, "narration": exc.message},
            )
        except OrchError as exc:  # budget exhausted mid-stream
            record.finish_error(exc.envelope())
        except asyncio.CancelledError:
            record.finish_error(OrchError(ErrorCode.CANCELLED, "task cancelled").envelope(), TaskState.cancelled)
            raise
        except Exception as exc:
            log.exception("task %s crashed in the relay", record.task_id)
            record.finish_error(OrchError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}").envelope())
        finally:
            await stream.aclose()
            self.dispatcher.release(replica, record)
            self._runners.pop(record.task_id, None)
            if budget is not None:
                budget.charge_wall((time.monotonic() - last_charge) * 1000)
                if session is not None and self._session_changed is not None:
                    self._session_changed(session)
            await self.replica_set.finished_on(replica, record.task_id)
            if record.state is TaskState.done and record.first_token_at is not None:
                self._observe(record, started_at)
            self._on_finished(record)
            self.pump()

    def _runner_done(self, record: TaskRecord, replica: Replica, _runner: asyncio.Task[None]) -> None:
        """A runner cancelled before its coroutine began never ran its clean-up: do it here."""
        if self._runners.pop(record.task_id, None) is None:
            return  # the runner's own ``finally`` did it
        self.dispatcher.release(replica, record)
        self.replica_set.release(replica, record.task_id)
        if record.terminal:
            self._on_finished(record)
        if not self._closing:
            self.pump()

    def _observe(self, record: TaskRecord, started_at: float) -> None:
        """Fold a finished task into the estimator and the SLO window."""
        assert record.first_token_at is not None
        ttft_ms = (record.first_token_at - started_at) * 1000
        decoded_ms = ((record.finished_at or time.monotonic()) - record.first_token_at) * 1000
        self.estimator.observe(
            first_token_ms=ttft_ms,
            decode_ms=decoded_ms,
            tokens_out=record.tokens_out,
            max_tokens=record.request.max_tokens,
        )
        rate = (record.tokens_out - 1) / (decoded_ms / 1000) if record.tokens_out > 1 and decoded_ms > 0 else None
        self.slo.add(time.monotonic(), ttft_ms, rate)

    async def _embed(self, record: TaskRecord, replica: Replica) -> None:
        """An embedding task: one call to the engine, its vectors in the ``end`` event."""
        req = record.request
        inputs = list(req.inputs) if req.inputs is not None else [req.text()]
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.timeouts.first_token_s):
                result = await replica.engine.embed(inputs)
        except TimeoutError as exc:
            raise EngineError(
                ErrorCode.DECODE_TIMEOUT,
                f"engine gave no embeddings within {self.timeouts.first_token_s:g} s on replica {replica.replica_id}",
                engine=self.config.engine,
                retriable=True,
                retry_after_ms=1000,
            ) from exc
        record.first_token_at = time.monotonic()
        end = EndEvent(
            tokens_out=0,
            decode_time_ms=int((record.first_token_at - began) * 1000),
            finish_reason="stop",
            prompt_tokens=result.prompt_tokens,
            embeddings=result.vectors,
        )
        record.finish("end", end.model_dump_json(exclude_none=True), TaskState.done)

    def _emit_metrics(self, record: TaskRecord, kv_warm: bool, budget: Budget | None) -> None:
        elapsed = time.monotonic() - (record.first_token_at or time.monotonic())
        rate = record.tokens_out / elapsed if elapsed > 0 and record.tokens_out > 1 else None
        payload: dict[str, object] = {
            "queue_depth": len(self.queue),
            "kv_warmth": kv_warm,
            "tokens_out": record.tokens_out,
        }
        if rate is not None:
            payload["tokens_per_s"] = round(rate, 1)
        if budget is not None:
            payload["budget_tokens_remaining"] = budget.tokens_remaining()
            payload["budget_cost_remaining"] = budget.cost_remaining()
            payload["budget_wall_ms_remaining"] = budget.wall_ms_remaining()
        record.emit("metrics", json.dumps(payload))


def _chat_messages(req: TaskRequest) -> tuple[ChatMessage, ...] | None:
    """A chat task's conversation for the engine's template (a bare prompt is one user turn)."""
    if req.workload is not Workload.chat:
        return None
    if req.messages is not None:
        return tuple(ChatMessage(m.role, m.content) for m in req.messages)
    return (ChatMessage("user", req.text()),)


__all__ = ["Pool"]


def _reuses_kv(record: TaskRecord) -> bool:
    """Whether the task may use (and goes where it finds) its session's KV cache: yes unless its
    ``kv_hint`` says ``cold``."""
    hint = record.request.kv_hint
    return hint is None or hint.mode == "reuse"
