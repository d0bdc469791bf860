"""The scheduler's state as the API's models: capabilities, pool health, replica sets, sessions.

Read-only views built on request; nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Iterable

from llama_orch.core import SAMPLER_PROFILES, Budget, PoolState, Session
from llama_orch.scheduler._pool import Pool
from llama_orch_api import (
    API_VERSION,
    BudgetInfo,
    Capabilities,
    FeatureFlags,
    PoolCapability,
    PoolHealth,
    RateLimits,
    ReplicaSet,
    ReplicaSetList,
    ReplicaStatus,
    SamplerProfile,
    SessionInfo,
    SloSnapshot,
    Workload,
)


def budget_info(budget: Budget) -> BudgetInfo:
    return BudgetInfo(
        tokens_limit=budget.tokens_limit,
        tokens_used=budget.tokens_used,
        tokens_reserved=budget.tokens_reserved,
        tokens_remaining=budget.tokens_remaining(),
        wall_ms_limit=budget.wall_ms_limit,
        wall_ms_used=int(budget.wall_ms_used),
        wall_ms_remaining=budget.wall_ms_remaining(),
        cost_limit=budget.cost_limit,
        cost_used=round(budget.cost_used, 9),
        cost_reserved=round(budget.cost_reserved, 9),
        cost_remaining=budget.cost_remaining(),
    )


def budget_headers(budget: Budget) -> dict[str, str]:
    """``X-Budget-*`` headers: the remaining amounts of the dimensions the budget limits."""
    headers = {}
    if (tokens := budget.tokens_remaining()) is not None:
        headers["X-Budget-Tokens-Remaining"] = str(tokens)
    if (cost := budget.cost_remaining()) is not None:
        headers["X-Budget-Cost-Remaining"] = f"{cost:.6g}"
    if (wall := budget.wall_ms_remaining()) is not None:
        headers["X-Budget-Wall-Ms-Remaining"] = str(wall)
    return headers


def session_info(session: Session, now: float, max_turns: int | None) -> SessionInfo:
    return SessionInfo(
        session_id=session.session_id,
        ttl_ms_remaining=session.ttl_ms_remaining(now),
        turns=session.turns,
        max_turns=max_turns,
        kv_warmth=session.kv_warm,
        pool=session.pool,
        replica=session.replica,
        tokens_used=session.tokens_used,
        budget=budget_info(session.budget) if session.budget is not None else None,
    )


def capabilities(pools: Iterable[Pool], *, max_body_bytes: int) -> Capabilities:
    return Capabilities(
        api_version=API_VERSION,
        pools=[
            PoolCapability(
                id=pool.pool_id,
                engine=pool.config.engine,
                engine_version=pool.engine_version,
                model_ref=pool.model_ref,
                ctx_max=pool.ctx_max,
                max_tokens=pool.limits.max_tokens,
                max_tokens_out=pool.limits.max_tokens,
                slots=pool.total_slots,
                concurrency=pool.total_slots,
                replicas=len(pool.replicas),
                workloads=sorted(pool.limits.workloads, key=lambda w: w.value),
                determinism=sorted(pool.limits.determinism, key=lambda d: d.value),
                queue_capacity=pool.queue.capacity,
                queue_policy=pool.queue.policy.value,
                price_per_token=pool.config.price_per_token,
                rate_limits=RateLimits(
                    queue_capacity=pool.queue.capacity,
                    queue_policy=pool.queue.policy.value,
                    max_body_bytes=max_body_bytes,
                ),
                features=FeatureFlags(
                    determinism=sorted(d.value for d in pool.limits.determinism),
                    kv_reuse=pool.config.engine != "mock",
                    embeddings=Workload.embedding in pool.limits.workloads,
                ),
            )
            for pool in pools
        ],
        sampler_profiles=[
            SamplerProfile(name=p.name, params=p.params(), deterministic=p.deterministic, notes=p.notes)
            for p in SAMPLER_PROFILES.values()
        ],
    )


_SHOWN_AS_IS = (PoolState.draining, PoolState.drained, PoolState.unready)


def replica_statuses(pool: Pool) -> list[ReplicaStatus]:
    """Each replica's state: the pool's while it drains or is unready, else ready or unready."""
    state = pool.state if pool.state in _SHOWN_AS_IS else PoolState.ready
    return [
        ReplicaStatus(
            id=r.replica_id,
            state=(state if r.ready or state is not PoolState.ready else PoolState.unready).value,
            model_ref=r.model_ref,
            slots_total=r.slots,
            slots_free=max(0, r.slots - r.active),
            devices=sorted(r.devices) if r.devices is not None else None,
            vram_total_bytes=sum(g.vram_total_bytes for g in r.gpus) if r.gpus else None,
            vram_free_bytes=r.vram_free_bytes,
            gpu_utilization_pct=max((g.utilization_pct for g in r.gpus if g.utilization_pct is not None), default=None),
            host=r.host,
        )
        for r in pool.replicas
    ]


def pool_health(pool: Pool) -> PoolHealth:
    return PoolHealth(
        pool=pool.pool_id,
        state=pool.state.value,
        live=not pool.closing,
        ready=pool.admits,
        model_ref=pool.model_ref,
        engine=pool.config.engine,
        engine_version=pool.engine_version,
        replicas=replica_statuses(pool),
        queue_depth=len(pool.queue),
        active=pool.active,
        drain_deadline_ms=pool.drain_deadline_ms,
        last_error=pool.last_error,
    )


def replicasets(pools: Iterable[Pool], now: float) -> ReplicaSetList:
    sets = []
    for pool in pools:
        total = pool.total_slots
        busy = pool.active
        sets.append(
            ReplicaSet(
                pool=pool.pool_id,
                engine=pool.config.engine,
                engine_version=pool.engine_version,
                model_ref=pool.model_ref,
                state=pool.state.value,
                load=round(busy / total, 4) if total else 0.0,
                slots_total=total,
                slots_free=max(0, total - busy),
                queue_depth=len(pool.queue),
                queue_capacity=pool.queue.capacity,
                replicas=replica_statuses(pool),
                slo=SloSnapshot.model_validate(pool.slo.snapshot(now)),
            )
        )
    return ReplicaSetList(replicasets=sets)


__all__ = [
    "budget_headers",
    "budget_info",
    "capabilities",
    "pool_health",
    "replica_statuses",
    "replicasets",
    "session_info",
]
