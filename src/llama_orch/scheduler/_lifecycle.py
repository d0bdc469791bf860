"""Pool drain and atomic reload (OC-CLI-2102), for pools this orchestrator runs in-process.

Drain: the pool stops admitting (``503 POOL_DRAINING``); queued and running tasks may finish until
the deadline; whatever is left then ends with a retriable ``POOL_DRAINING`` error. The pool is then
``drained`` and admits nothing until it is reloaded.

Reload: new replicas for the new model are built and started *beside* the old ones, which keep
serving; only when every new replica passes its health check before the deadline are they swapped
in (new tasks go to them, old replicas finish what they run and are then closed). On any failure
the new replicas are closed and the pool stays on the old model, ready: a rollback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from llama_orch.core import PoolState
from llama_orch.errors import ModelUnavailable, OrchError
from llama_orch.scheduler._pool import Pool
from llama_orch.scheduler._replicas import Replica
from llama_orch_api import ErrorCode, PoolOperation

log = logging.getLogger("llama_orch.pool")

GGUF_MAGIC = b"GGUF"


def _elapsed_ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)


async def drain(pool: Pool, deadline_ms: int) -> PoolOperation:
    if pool.state.busy:
        raise OrchError(ErrorCode.CONFLICT, f"pool {pool.pool_id!r} is already {pool.state.value}")
    began = time.monotonic()
    pool.state = PoolState.draining
    pool.drain_deadline_ms = deadline_ms
    log.info("draining pool %s (deadline %d ms)", pool.pool_id, deadline_ms, extra={"pool": pool.pool_id})
    before = len(pool.queue) + len(pool.running)
    deadline = began + deadline_ms / 1000
    # Bounded by the deadline; an admin operation, so a short poll is simpler than wiring events.
    while (pool.queue or pool.running) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    leftover = pool.abort_all(
        OrchError(
            ErrorCode.POOL_DRAINING,
            f"pool {pool.pool_id!r} was drained; its deadline of {deadline_ms} ms passed",
            retriable=True,
            retry_after_ms=1000,
        )
    )
    await pool.wait_runners()
    pool.state = PoolState.drained
    pool.drain_deadline_ms = None
    return PoolOperation(
        pool=pool.pool_id,
        operation="drain",
        outcome="completed",
        state="drained",
        model_ref=pool.model_ref,
        finished_tasks=max(0, before - leftover),
        cancelled_tasks=leftover,
        duration_ms=_elapsed_ms(began),
        message=f"drained: {before - leftover} task(s) finished, {leftover} cut at the deadline",
    )


def _check_gguf(path: Path) -> None:
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ValueError(f"model file {path} is not a GGUF file (bad magic)")


async def _check_loadable(pool: Pool, model_ref: str) -> Path | None:
    """What the engine would refuse to load: a model that cannot be provisioned (missing, not
    fetchable under the models policy) or a file that is not GGUF. ``mock:*`` needs no file."""
    path = await pool.fetch_model(model_ref)
    if path is not None:
        await asyncio.to_thread(_check_gguf, path)
    return path


async def reload(pool: Pool, model_ref: str, deadline_ms: int) -> PoolOperation:
    if pool.state.busy:
        raise OrchError(ErrorCode.CONFLICT, f"pool {pool.pool_id!r} is {pool.state.value}; try again when it is done")
    began = time.monotonic()
    previous_state, previous_model = pool.state, pool.model_ref
    pool.state = PoolState.reloading
    pool.replica_set.generation += 1
    fresh: list[Replica] = pool.new_replicas(model_ref)
    try:
        async with asyncio.timeout(deadline_ms / 1000):
            model_path = await _check_loadable(pool, model_ref)
            # Managed replicas are new llama-server processes beside the old ones, awaited until
            # Ready (health and a probe decode); the old ones serve meanwhile.
            errors = await pool.start_replicas(fresh, model_path)
            if errors:
                raise ValueError(errors[0])
            for replica in fresh:
                if not await replica.engine.health():
                    raise ValueError(f"replica {replica.replica_id} failed its health check")
    except (ValueError, OSError, TimeoutError, ModelUnavailable) as exc:
        reason = "the deadline passed" if isinstance(exc, TimeoutError) else str(exc)
        for replica in fresh:
            await replica.engine.aclose()
        pool.state = previous_state
        pool.last_error = f"reload to {model_ref!r} failed: {reason}"
        pool.pump()
        log.warning("reload of pool %s to %s rolled back: %s", pool.pool_id, model_ref, reason)
        raise OrchError(
            ErrorCode.RELOAD_FAILED,
            f"reload of pool {pool.pool_id!r} to {model_ref!r} failed ({reason}); "
            f"rolled back, still serving {previous_model!r}",
            details={"rolled_back": True, "model_ref": previous_model},
        ) from exc
    pool.swap_replicas(fresh, model_ref)
    pool.model_path, pool.unready_error = model_path, None
    if fresh:
        pool.describe_engine(fresh[0].engine)
    pool.state = PoolState.ready
    pool.last_error = None
    pool.pump()
    log.info("pool %s reloaded: %s -> %s", pool.pool_id, previous_model, model_ref)
    return PoolOperation(
        pool=pool.pool_id,
        operation="reload",
        outcome="completed",
        state="ready",
        model_ref=model_ref,
        previous_model_ref=previous_model,
        duration_ms=_elapsed_ms(began),
        message=f"now serving {model_ref!r}; old replicas finish their running tasks",
    )
