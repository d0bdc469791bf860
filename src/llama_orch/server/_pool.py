"""A pool at run time: its bounded queue, replicas, and the dispatcher that feeds them.

Dispatch is event-driven: :meth:`Pool.pump` runs whenever a task is queued or a slot frees, and
starts queued tasks while slots are free. Each started task runs as an asyncio task owned by the
pool (cancelled on shutdown or by a client's cancel); nothing is fire-and-forget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llama_orch.core import (
    BoundedPriorityQueue,
    PoolLimits,
    Pushed,
    ServiceEstimator,
    Session,
    predict_start_ms,
)
from llama_orch.engines import Engine, EngineRequest, LlamaCppEngine, MockEngine
from llama_orch.errors import EngineError, OrchError
from llama_orch.server._tasks import TaskRecord, TaskState
from llama_orch.server.config import PoolConfig
from llama_orch_api import Determinism, ErrorCode, Priority, StartedEvent

log = logging.getLogger("llama_orch.pool")

EXACT_PREDICTION_LIMIT = 64
"""Queued tasks replayed exactly when predicting a start; the rest count as fluid work."""


@dataclass(eq=False)
class Replica:
    replica_id: str
    engine: Engine
    slots: int
    active: int = 0
    running: dict[str, TaskRecord] = field(default_factory=dict)


def build_engine(config: PoolConfig) -> Engine:
    """One engine replica from its pool's configuration."""
    if config.endpoint is not None:
        determinism = frozenset({Determinism.best_effort})
        if config.engine == "mock":
            determinism = frozenset({Determinism.strict, Determinism.best_effort})
        return LlamaCppEngine(
            config.endpoint,
            engine_name=config.engine,
            slots=config.slots or config.mock.slots,
            ctx_max=config.ctx_max or config.mock.ctx_max,
            version="mock-1" if config.engine == "mock" else "unknown",
            determinism=determinism,
        )
    return MockEngine(config.mock)


class Pool:
    """Queue + replicas + dispatcher for one configured pool."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        on_finished: Callable[[TaskRecord], None],
        session_of: Callable[[str], Session | None],
        metrics_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.queue: BoundedPriorityQueue[TaskRecord] = BoundedPriorityQueue(config.queue.capacity, config.queue.policy)
        self.replicas = [
            Replica(f"{config.id}/r{i}", engine, 0)
            for i, engine in enumerate(build_engine(config) for _ in range(config.replicas))
        ]
        info = self.replicas[0].engine.describe()
        for replica in self.replicas:
            replica.slots = config.slots or info.slots
        self.engine_version = info.version
        self.ctx_max = config.ctx_max or info.ctx_max
        modes = frozenset(config.determinism) if config.determinism is not None else info.determinism
        self.limits = PoolLimits(
            pool_id=config.id,
            engine=config.engine,
            model_ref=config.model_ref,
            ctx_max=self.ctx_max,
            max_tokens=config.max_tokens,
            workloads=frozenset(config.workloads),
            determinism=modes | {Determinism.best_effort},
        )
        if config.engine == "mock":
            rate = config.mock.tokens_per_s
            self.estimator = ServiceEstimator(
                first_token_ms=config.mock.first_token_ms + config.mock.faults.slow_start_ms,
                ms_per_token=0.01 if rate is None else 1000.0 / rate,
            )
        else:
            self.estimator = ServiceEstimator(first_token_ms=200.0, ms_per_token=20.0)
        self._queued_tokens = {Priority.interactive: 0, Priority.batch: 0}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._on_finished = on_finished
        self._session_of = session_of
        self._metrics_interval_s = metrics_interval_s
        self._closing = False

    @property
    def pool_id(self) -> str:
        return self.config.id

    @property
    def total_slots(self) -> int:
        return sum(r.slots for r in self.replicas)

    @property
    def active(self) -> int:
        return sum(r.active for r in self.replicas)

    async def start(self) -> None:
        for replica in self.replicas:
            await replica.engine.start()

    async def aclose(self) -> None:
        """End every queued and running task with a retriable error, then close the engines."""
        if self._closing:
            return
        self._closing = True
        shutdown = OrchError(
            ErrorCode.POOL_UNAVAILABLE, "orchestratord is shutting down", retriable=True, retry_after_ms=1000
        )
        while (item := self.queue.pop()) is not None:
            item[1].finish_error(shutdown.envelope())
        for replica in self.replicas:
            for record in replica.running.values():
                record.finish_error(shutdown.envelope())
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        for replica in self.replicas:
            await replica.engine.aclose()

    # -- admission ------------------------------------------------------------------------------

    def predict_new(self, priority: Priority, now: float) -> float:
        """Milliseconds until a task of ``priority`` submitted now would start."""
        est = self.estimator
        free_in: list[float] = []
        for replica in self.replicas:
            for rec in replica.running.values():
                elapsed = (now - (rec.started_at or now)) * 1000
                free_in.append(est.remaining_ms(rec.request.max_tokens, rec.tokens_out, elapsed))
            free_in.extend([0.0] * (replica.slots - len(replica.running)))
        ahead_count = self.queue.ahead_of_new(priority)
        if ahead_count == 0:
            return min(free_in)
        # Replay exactly a few rounds of the slots; beyond that, queued work is fluid.
        exact = min(ahead_count, EXACT_PREDICTION_LIMIT, 2 * len(free_in))
        head = [rec.request.max_tokens for rec in self.queue.head(exact, priority)]
        first, fill, per_token = est.first_token_ms, est.fill_ratio, est.ms_per_token
        services = [first + (m * fill if m * fill > 1.0 else 1.0) * per_token for m in head]
        extra = 0.0
        if ahead_count > exact:
            tokens = self._queued_tokens[Priority.interactive]
            if priority is Priority.batch:
                tokens += self._queued_tokens[Priority.batch]
            rest = ahead_count - exact
            extra = rest * first + fill * (tokens - sum(head)) * per_token
        return predict_start_ms(free_in, services, extra_ahead_ms=extra)

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
        if pushed.evicted is not None:
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

    def cancel(self, record: TaskRecord) -> None:
        """End ``record`` as cancelled; a queued task never starts, a running one emits nothing more."""
        if self.queue.remove(record.task_id) is not None:
            self._queued_tokens[record.request.priority] -= record.request.max_tokens
        record.finish_error(
            OrchError(ErrorCode.CANCELLED, "task cancelled by the client").envelope(), TaskState.cancelled
        )
        runner = self._runners.get(record.task_id)
        if runner is not None:
            runner.cancel()
        else:
            self._on_finished(record)

    # -- dispatch -------------------------------------------------------------------------------

    def _pick_replica(self, record: TaskRecord) -> Replica | None:
        free = [r for r in self.replicas if r.active < r.slots]
        if not free:
            return None
        if record.request.session_id is not None:
            session = self._session_of(record.request.session_id)
            if session is not None and session.replica is not None:
                for replica in free:
                    if replica.replica_id == session.replica:
                        return replica
        return min(free, key=lambda r: (r.active, r.replica_id))

    def pump(self) -> None:
        """Start queued tasks while a replica has a free slot."""
        if self._closing:
            return
        now = time.monotonic()
        while self.queue:
            head = self.queue.peek()
            assert head is not None
            replica = self._pick_replica(head[1])
            if replica is None:
                return
            self.queue.pop()
            record = head[1]
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
            replica.active += 1
            replica.running[record.task_id] = record
            record.state = TaskState.running
            record.started_at = now
            record.replica_id = replica.replica_id
            self._runners[record.task_id] = asyncio.get_running_loop().create_task(
                self._run(record, replica), name=f"task:{record.task_id}"
            )

    async def _run(self, record: TaskRecord, replica: Replica) -> None:
        req = record.request
        started_at = record.started_at or time.monotonic()
        waited_ms = int((started_at - record.admitted_at) * 1000)
        session = self._session_of(req.session_id) if req.session_id else None
        kv_warm = bool(session and session.kv_warm and session.replica == replica.replica_id)
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
        self._emit_metrics(record, kv_warm)
        engine_req = EngineRequest(
            task_id=record.task_id,
            prompt=req.text(),
            max_tokens=req.max_tokens,
            seed=req.seed,
            determinism=req.determinism,
            sampler_profile=req.sampler_profile_version,
        )
        stream = replica.engine.stream(engine_req)
        last_metrics = started_at
        try:
            timeout = self.config.first_token_timeout_s
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        batch = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise EngineError(
                        ErrorCode.DECODE_TIMEOUT,
                        f"engine sent nothing for {timeout:g} s on replica {replica.replica_id}",
                        engine=self.config.engine,
                        retriable=True,
                        retry_after_ms=1000,
                    ) from exc
                if record.first_token_at is None:
                    record.first_token_at = time.monotonic()
                    timeout = self.config.token_timeout_s
                if not record.emit_tokens(batch):
                    break
                now = time.monotonic()
                if now - last_metrics >= self._metrics_interval_s:
                    last_metrics = now
                    self._emit_metrics(record, kv_warm)
            decode_ms = int((time.monotonic() - (record.first_token_at or started_at)) * 1000)
            finish_reason = "length" if record.tokens_out >= req.max_tokens else "stop"
            record.finish(
                "end",
                json.dumps(
                    {
                        "tokens_out": record.tokens_out,
                        "decode_time_ms": decode_ms,
                        "finish_reason": finish_reason,
                    }
                ),
                TaskState.done,
            )
        except EngineError as exc:
            exc.engine = exc.engine or self.config.engine
            record.finish_error(exc.envelope())
            log.warning(
                "task %s failed on replica %s: %s",
                record.task_id,
                replica.replica_id,
                exc.code.value,
                extra={"task_id": record.task_id, "narration": exc.message},
            )
        except asyncio.CancelledError:
            record.finish_error(OrchError(ErrorCode.CANCELLED, "task cancelled").envelope(), TaskState.cancelled)
            raise
        except Exception as exc:
            log.exception("task %s crashed in the relay", record.task_id)
            record.finish_error(OrchError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}").envelope())
        finally:
            await stream.aclose()
            replica.active -= 1
            replica.running.pop(record.task_id, None)
            self._runners.pop(record.task_id, None)
            if record.state is TaskState.done and record.first_token_at is not None:
                self.estimator.observe(
                    first_token_ms=(record.first_token_at - started_at) * 1000,
                    decode_ms=((record.finished_at or time.monotonic()) - record.first_token_at) * 1000,
                    tokens_out=record.tokens_out,
                    max_tokens=req.max_tokens,
                )
            self._on_finished(record)
            self.pump()

    def _emit_metrics(self, record: TaskRecord, kv_warm: bool) -> None:
        elapsed = time.monotonic() - (record.first_token_at or time.monotonic())
        rate = record.tokens_out / elapsed if elapsed > 0 and record.tokens_out > 1 else None
        payload: dict[str, object] = {
            "queue_depth": len(self.queue),
            "kv_warmth": kv_warm,
            "tokens_out": record.tokens_out,
        }
        if rate is not None:
            payload["tokens_per_s"] = round(rate, 1)
        record.emit("metrics", json.dumps(payload))
