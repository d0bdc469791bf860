"""llama-orch API types: the models shared by orchestratord and its clients."""

from __future__ import annotations

from llama_orch_api._models import (
    API_VERSION,
    ERROR_STATUS,
    SSE_EVENTS,
    AdmissionResponse,
    Capabilities,
    Determinism,
    EndEvent,
    ErrorCode,
    ErrorEnvelope,
    ErrorEvent,
    KvHint,
    MetricsEvent,
    PoolCapability,
    Priority,
    SessionInfo,
    StartedEvent,
    TaskRequest,
    TokenEvent,
    Workload,
)

__all__ = [
    "API_VERSION",
    "ERROR_STATUS",
    "SSE_EVENTS",
    "AdmissionResponse",
    "Capabilities",
    "Determinism",
    "EndEvent",
    "ErrorCode",
    "ErrorEnvelope",
    "ErrorEvent",
    "KvHint",
    "MetricsEvent",
    "PoolCapability",
    "Priority",
    "SessionInfo",
    "StartedEvent",
    "TaskRequest",
    "TokenEvent",
    "Workload",
]
