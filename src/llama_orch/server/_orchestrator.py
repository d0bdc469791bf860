"""The orchestrator: admission across pools, the task table, sessions, retention.

It knows nothing of HTTP; the routes in :mod:`llama_orch.server.app` translate to and from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from pydantic import ValidationError

from llama_orch.core import Full, SessionRegistry, candidate_pools
from llama_orch.errors import AdmissionError, OrchError, QueueFullError
from llama_orch.server._pool import Pool
from llama_orch.server._tasks import TaskRecord
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import (
    API_VERSION,
    AdmissionResponse,
    Capabilities,
    ErrorCode,
    PoolCapability,
    SessionInfo,
    TaskRequest,
)

log = logging.getLogger("llama_orch.orchestrator")


def validation_error(exc: ValidationError) -> AdmissionError:
    """A pydantic error as ``INVALID_PARAMS``, naming fields but never echoing their values."""
    problems = [
        {"loc": ".".join(str(p) for p in err["loc"]) or "<body>", "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    first = problems[0] if problems else {"loc": "<body>", "msg": "invalid"}
    return AdmissionError(
        ErrorCode.INVALID_PARAMS,
        f"invalid request: {first['loc']}: {first['msg']}",
        details={"errors": problems},
    )


class Orchestrator:
    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self.sessions = SessionRegistry(config.sessions.ttl_s, config.sessions.max_turns)
        self.tasks: dict[str, TaskRecord] = {}
        self._finished: dict[str, float] = {}
        self.pools: dict[str, Pool] = {
            p.id: Pool(
                p,
                on_finished=self._on_finished,
                session_of=lambda sid: self.sessions.get(sid, time.monotonic()),
                metrics_interval_s=config.server.metrics_interval_s,
            )
            for p in config.pools
        }
        self._limits = [pool.limits for pool in self.pools.values()]
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for pool in self.pools.values():
            await pool.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="sweeper")
        log.info(
            "orchestrator ready with pools %s",
            ", ".join(f"{p.pool_id} ({p.config.engine}, {p.total_slots} slots)" for p in self.pools.values()),
        )

    async def aclose(self) -> None:
        """Idempotent: end all tasks (retriable errors), stop the sweeper, close engines."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for pool in self.pools.values():
            await pool.aclose()

    # -- tasks ----------------------------------------------------------------------------------

    def submit(self, body: bytes) -> AdmissionResponse:
        """Validate, check guardrails, queue. Raises :class:`OrchError` subclasses."""
        try:
            request = TaskRequest.model_validate_json(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        task_id = request.task_id or uuid.uuid4().hex
        if task_id in self.tasks:
            raise AdmissionError(ErrorCode.TASK_EXISTS, f"task {task_id!r} already exists")
        candidates = candidate_pools(request, self._limits)
        now = time.monotonic()
        pools = [self.pools[c.pool_id] for c in candidates]
        if len(pools) == 1:
            pool, predicted = pools[0], pools[0].predict_new(request.priority, now)
        else:
            pool, predicted = min(((p, p.predict_new(request.priority, now)) for p in pools), key=lambda pp: pp[1])
        predicted_ms = int(predicted)
        if request.deadline_ms is not None and predicted_ms > request.deadline_ms:
            raise AdmissionError(
                ErrorCode.DEADLINE_UNMET,
                f"predicted start in {predicted_ms} ms misses the deadline of {request.deadline_ms} ms",
                retriable=True,
                retry_after_ms=predicted_ms - request.deadline_ms,
                details={"predicted_start_ms": predicted_ms, "pool": pool.pool_id},
            )
        record = TaskRecord(task_id, request, pool.pool_id, queue_position=0, predicted_start_ms=predicted_ms, now=now)
        try:
            pushed = pool.enqueue(record)
        except Full:
            retry = pool.retry_after_ms()
            policy = pool.queue.policy.value
            raise QueueFullError(
                ErrorCode.ADMISSION_REJECT,
                f"pool {pool.pool_id!r} queue is full ({pool.queue.capacity} tasks, policy {policy})",
                retriable=True,
                retry_after_ms=retry,
                policy_label=f"queue-full:{policy}",
                engine=pool.config.engine,
            ) from None
        record.queue_position = pushed.position
        self.tasks[task_id] = record
        if request.session_id is not None:
            self.sessions.touch(request.session_id, now)
        record.emit(
            "metrics",
            f'{{"queue_position":{pushed.position},"predicted_start_ms":{predicted_ms},'
            f'"queue_depth":{len(pool.queue)}}}',
        )
        pool.pump()
        return AdmissionResponse(
            task_id=task_id,
            pool=pool.pool_id,
            queue_position=pushed.position,
            predicted_start_ms=predicted_ms,
            backoff_ms=self._backoff_ms(pool),
            stream_url=f"/v1/tasks/{task_id}/stream",
        )

    def _backoff_ms(self, pool: Pool) -> int:
        """Advice for the client's next submission: 0 until the queue is half full."""
        fill = len(pool.queue) / pool.queue.capacity
        return 0 if fill < 0.5 else int(pool.retry_after_ms() * fill * 2)

    def get_task(self, task_id: str) -> TaskRecord:
        record = self.tasks.get(task_id)
        if record is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no task {task_id!r} (unknown, or its events expired)")
        return record

    def cancel(self, task_id: str) -> None:
        record = self.get_task(task_id)
        if not record.terminal:
            self.pools[record.pool_id].cancel(record)

    def _on_finished(self, record: TaskRecord) -> None:
        now = time.monotonic()
        self._finished[record.task_id] = now
        sid = record.request.session_id
        if sid is not None and record.replica_id is not None and record.tokens_out:
            self.sessions.record_turn(
                sid, now, pool=record.pool_id, replica=record.replica_id, tokens=record.tokens_out
            )

    def sweep(self, now: float) -> int:
        """Forget finished tasks past retention (and beyond the retained-count cap)."""
        retention = self.config.server.event_retention_s
        cap = self.config.server.max_retained_tasks
        dropped = 0
        for task_id, finished_at in list(self._finished.items()):
            if now - finished_at < retention and len(self._finished) <= cap:
                break
            del self._finished[task_id]
            self.tasks.pop(task_id, None)
            dropped += 1
        self.sessions.sweep(now)
        return dropped

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(5.0, self.config.server.event_retention_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    # -- sessions and capabilities --------------------------------------------------------------

    def session_info(self, session_id: str) -> SessionInfo:
        now = time.monotonic()
        session = self.sessions.get(session_id, now)
        if session is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no session {session_id!r} (unknown or expired)")
        return SessionInfo(
            session_id=session.session_id,
            ttl_ms_remaining=session.ttl_ms_remaining(now),
            turns=session.turns,
            max_turns=self.sessions.max_turns,
            kv_warmth=session.kv_warm,
            pool=session.pool,
            replica=session.replica,
            tokens_used=session.tokens_used,
        )

    def delete_session(self, session_id: str) -> None:
        if not self.sessions.delete(session_id, time.monotonic()):
            raise OrchError(ErrorCode.NOT_FOUND, f"no session {session_id!r} (unknown or expired)")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            api_version=API_VERSION,
            pools=[
                PoolCapability(
                    id=pool.pool_id,
                    engine=pool.config.engine,
                    engine_version=pool.engine_version,
                    model_ref=pool.config.model_ref,
                    ctx_max=pool.ctx_max,
                    max_tokens=pool.config.max_tokens,
                    slots=pool.total_slots,
                    replicas=len(pool.replicas),
                    workloads=sorted(pool.limits.workloads, key=lambda w: w.value),
                    determinism=sorted(pool.limits.determinism, key=lambda d: d.value),
                    queue_capacity=pool.queue.capacity,
                    queue_policy=pool.queue.policy.value,
                )
                for pool in self.pools.values()
            ],
        )
