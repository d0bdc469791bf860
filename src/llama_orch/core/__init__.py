"""Pure scheduling logic: queues, admission, placement, start-time prediction and retry advice,
sessions, budgets, pool states, sampler profiles, SLO windows.

No I/O and no event loop: every function takes the time it needs as an argument, and nothing here
imports a network, file or database library (the layering check in CI holds it to that).
"""

from __future__ import annotations

from llama_orch.core._admission import (
    Admission,
    PoolLimits,
    PoolSnapshot,
    admit,
    candidate_pools,
    check_limits,
    estimate_prompt_tokens,
    match_key,
    matching_pools,
    parse_task,
    validation_error,
)
from llama_orch.core._budgets import Budget, BudgetExceeded
from llama_orch.core._placement import Placement, PlacementRequest, ReplicaView, place
from llama_orch.core._predict import (
    EXACT_PREDICTION_LIMIT,
    QueueLoad,
    RunningTask,
    ServiceEstimator,
    backoff_ms,
    head_needed,
    predict_new,
    predict_start_ms,
    retry_after_ms,
)
from llama_orch.core._queue import BoundedPriorityQueue, Full, Pushed, QueuePolicy
from llama_orch.core._sampler import SAMPLER_PROFILES, SamplerProfileSpec
from llama_orch.core._sessions import Session, SessionRegistry
from llama_orch.core._slo import SloWindow
from llama_orch.core._states import PoolState

__all__ = [
    "EXACT_PREDICTION_LIMIT",
    "SAMPLER_PROFILES",
    "Admission",
    "BoundedPriorityQueue",
    "Budget",
    "BudgetExceeded",
    "Full",
    "Placement",
    "PlacementRequest",
    "PoolLimits",
    "PoolSnapshot",
    "PoolState",
    "Pushed",
    "QueueLoad",
    "QueuePolicy",
    "ReplicaView",
    "RunningTask",
    "SamplerProfileSpec",
    "ServiceEstimator",
    "Session",
    "SessionRegistry",
    "SloWindow",
    "admit",
    "backoff_ms",
    "candidate_pools",
    "check_limits",
    "estimate_prompt_tokens",
    "head_needed",
    "match_key",
    "matching_pools",
    "parse_task",
    "place",
    "predict_new",
    "predict_start_ms",
    "retry_after_ms",
    "validation_error",
]
