"""Admission: everything decided before a task may be queued, as pure functions.

Order of checks (the first failure is reported): pool pin, engine, model, workload, determinism,
``ctx``, ``max_tokens``, prompt + ``max_tokens`` against the context (:func:`matching_pools`,
:func:`check_limits`); then, over :class:`PoolSnapshot` s of the pools that fit, :func:`admit`:
which of them admit now (else ``503 POOL_UNREADY`` / ``POOL_DRAINING``), the one predicted to start
the task soonest, and the task's deadline against that prediction (``429 DEADLINE_UNMET``: a
capacity answer with advice, like a full queue, not a fault of ours).

Sessions, budgets and the queue's own capacity are checked by the caller once a pool is chosen
(they change state, and admission here changes none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from llama_orch.core._predict import QueueLoad, ServiceEstimator, predict_new, slot_init
from llama_orch.core._states import PoolState
from llama_orch.errors import AdmissionError, OrchError
from llama_orch_api import Determinism, ErrorCode, TaskRequest, Workload


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """What admission needs to know about a pool."""

    pool_id: str
    engine: str
    model_ref: str
    ctx_max: int
    max_tokens: int
    workloads: frozenset[Workload]
    determinism: frozenset[Determinism]


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


def parse_task(body: bytes) -> TaskRequest:
    """A ``TaskRequest`` from its JSON text, or :class:`AdmissionError` ``INVALID_PARAMS``."""
    try:
        return TaskRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def estimate_prompt_tokens(text: str) -> int:
    """Upper-bound-ish token count without a tokenizer: ~4 bytes per token for English and code.

    Used only to refuse prompts that obviously cannot fit; the engine has the final word.
    """
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return max(1, math.ceil(size / 4))


def _fail(code: ErrorCode, message: str, **details: object) -> AdmissionError:
    return AdmissionError(code, message, details=details or None)


def candidate_pools(request: TaskRequest, pools: Sequence[PoolLimits]) -> list[PoolLimits]:
    """Pools that may run ``request``; raises :class:`AdmissionError` naming the first violated rule."""
    return check_limits(request, matching_pools(request, pools))


def match_key(request: TaskRequest) -> tuple[object, ...]:
    """What :func:`matching_pools` depends on: requests with equal keys match the same pools."""
    return (request.pool, request.engine, request.model_ref, request.workload, request.determinism)


def matching_pools(request: TaskRequest, pools: Sequence[PoolLimits]) -> list[PoolLimits]:
    """Pools whose name, engine, model, workloads and determinism fit ``request`` (limits aside)."""
    matching = list(pools)
    if request.pool is not None:
        matching = [p for p in matching if p.pool_id == request.pool]
        if not matching:
            raise _fail(
                ErrorCode.UNKNOWN_POOL,
                f"no pool named {request.pool!r}",
                known_pools=[p.pool_id for p in pools],
            )
    if request.engine is not None:
        by_engine = [p for p in matching if p.engine == request.engine]
        if not by_engine:
            raise _fail(
                ErrorCode.UNKNOWN_ENGINE,
                f"no pool serves engine {request.engine!r}",
                known_engines=sorted({p.engine for p in matching}),
            )
        matching = by_engine
    if request.model_ref is not None:
        by_model = [p for p in matching if p.model_ref == request.model_ref]
        if not by_model:
            raise _fail(
                ErrorCode.UNKNOWN_MODEL,
                f"no pool serves model {request.model_ref!r}",
                known_models=sorted({p.model_ref for p in matching}),
            )
        matching = by_model
    by_workload = [p for p in matching if request.workload in p.workloads]
    if not by_workload:
        raise _fail(
            ErrorCode.WORKLOAD_UNSUPPORTED,
            f"no matching pool supports workload {request.workload.value!r}",
        )
    matching = by_workload
    if request.determinism is Determinism.strict:
        strict = [p for p in matching if Determinism.strict in p.determinism]
        if not strict:
            raise _fail(
                ErrorCode.DETERMINISM_UNSUPPORTED,
                "no matching pool can guarantee determinism 'strict'; use 'best_effort' or another pool",
                pools=[p.pool_id for p in matching],
            )
        matching = strict
    return matching


def check_limits(request: TaskRequest, pools: list[PoolLimits]) -> list[PoolLimits]:
    """The pools among ``pools`` whose context and max_tokens limits fit ``request``."""
    if len(pools) == 1:
        ctx_max, limit = pools[0].ctx_max, pools[0].max_tokens
    else:
        ctx_max, limit = max(p.ctx_max for p in pools), max(p.max_tokens for p in pools)
    if request.ctx is not None and request.ctx > ctx_max:
        raise _fail(ErrorCode.CTX_EXCEEDED, f"ctx {request.ctx} exceeds the pool limit {ctx_max}", ctx_max=ctx_max)
    if request.max_tokens > limit:
        raise _fail(
            ErrorCode.MAX_TOKENS_EXCEEDED,
            f"max_tokens {request.max_tokens} exceeds the pool limit {limit}",
            max_tokens_limit=limit,
        )
    prompt_tokens = estimate_prompt_tokens(request.text())
    needed = prompt_tokens + request.max_tokens
    window = min(request.ctx or ctx_max, ctx_max)
    if needed > window:
        raise _fail(
            ErrorCode.CTX_EXCEEDED,
            f"prompt (~{prompt_tokens} tokens) plus max_tokens {request.max_tokens} does not fit a context of {window}",
            prompt_tokens_estimate=prompt_tokens,
            ctx=window,
        )
    if len(pools) == 1:
        return pools  # the single pool's limits were just checked
    fitting = [p for p in pools if p.max_tokens >= request.max_tokens and p.ctx_max >= max(needed, request.ctx or 0)]
    if not fitting:
        raise _fail(
            ErrorCode.CTX_EXCEEDED,
            "no single matching pool fits both the context and max_tokens asked for",
            pools=[p.pool_id for p in pools],
        )
    return fitting


@slot_init
@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """One pool as admission sees it at a moment."""

    limits: PoolLimits
    state: PoolState
    admits: bool
    """The state admits and the pool is not shutting down."""
    load: QueueLoad
    estimator: ServiceEstimator
    """Read only, never changed here."""
    unready: OrchError | None = None
    """Why the pool is unready (its model could not be provisioned, no replica left)."""


@slot_init
@dataclass(frozen=True, slots=True)
class Admission:
    """Admission's decision: the pool to queue on and the predicted start."""

    pool_id: str
    predicted_start_ms: int


def admit(request: TaskRequest, pools: Sequence[PoolSnapshot], now: float) -> Admission:
    """Choose the pool for ``request`` among ``pools`` (those whose limits fit it, see
    :func:`check_limits`), or raise :class:`AdmissionError`."""
    admitting: Sequence[PoolSnapshot] = pools if len(pools) == 1 and pools[0].admits else [p for p in pools if p.admits]
    if not admitting:
        raise _not_admitting(pools)
    if len(admitting) == 1:
        chosen = admitting[0]
        predicted = predict_new(chosen.load, request.priority, chosen.estimator, now)
    else:
        chosen, predicted = min(
            ((p, predict_new(p.load, request.priority, p.estimator, now)) for p in admitting), key=lambda pp: pp[1]
        )
    predicted_ms = int(predicted)
    deadline = request.deadline_ms
    if deadline is not None and predicted_ms > deadline:
        raise AdmissionError(
            ErrorCode.DEADLINE_UNMET,
            f"predicted start in {predicted_ms} ms misses the deadline of {deadline} ms",
            retriable=True,
            retry_after_ms=predicted_ms - deadline,
            policy_label="deadline-unmet",
            details={"predicted_start_ms": predicted_ms, "pool": chosen.limits.pool_id},
        )
    return Admission(chosen.limits.pool_id, predicted_ms)


def _not_admitting(pools: Sequence[PoolSnapshot]) -> AdmissionError:
    unready = [p.unready for p in pools if p.state is PoolState.unready and p.unready is not None]
    if unready:
        first = unready[0]
        return AdmissionError(
            ErrorCode.POOL_UNREADY,
            first.message,
            retriable=first.retriable,
            retry_after_ms=first.retry_after_ms,
            details=first.details,
        )
    states = {p.limits.pool_id: p.state.value for p in pools}
    return AdmissionError(
        ErrorCode.POOL_DRAINING,
        f"no matching pool is admitting tasks now ({', '.join(f'{k}: {v}' for k, v in states.items())})",
        retriable=True,
        retry_after_ms=1000,
        details={"pools": states},
    )
