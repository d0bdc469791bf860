"""Pure scheduling logic: queues, admission guardrails, placement, start-time prediction, sessions.

No I/O and no event loop: every function takes the time it needs as an argument.
"""

from __future__ import annotations

from llama_orch.core._admission import (
    PoolLimits,
    candidate_pools,
    check_limits,
    estimate_prompt_tokens,
    match_key,
    matching_pools,
)
from llama_orch.core._budgets import Budget, BudgetExceeded
from llama_orch.core._placement import Placement, PlacementRequest, ReplicaView, place
from llama_orch.core._predict import ServiceEstimator, predict_start_ms
from llama_orch.core._queue import BoundedPriorityQueue, Full, Pushed, QueuePolicy
from llama_orch.core._sampler import SAMPLER_PROFILES, SamplerProfileSpec
from llama_orch.core._sessions import Session, SessionRegistry
from llama_orch.core._slo import SloWindow

__all__ = [
    "SAMPLER_PROFILES",
    "BoundedPriorityQueue",
    "Budget",
    "BudgetExceeded",
    "Full",
    "Placement",
    "PlacementRequest",
    "PoolLimits",
    "Pushed",
    "QueuePolicy",
    "ReplicaView",
    "SamplerProfileSpec",
    "ServiceEstimator",
    "Session",
    "SessionRegistry",
    "SloWindow",
    "candidate_pools",
    "check_limits",
    "estimate_prompt_tokens",
    "match_key",
    "matching_pools",
    "place",
    "predict_start_ms",
]
