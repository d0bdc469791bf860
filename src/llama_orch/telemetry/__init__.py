"""Telemetry (OC-CLI-2701/2702/2703): Prometheus metrics with bounded label sets, OpenTelemetry
traces (off by default; W3C ``traceparent`` in and out), structured JSON logs with a human
``narration`` and redaction, and the on-time probability of SSE ``metrics`` frames.
"""

from __future__ import annotations

from llama_orch.telemetry._config import TelemetryConfig
from llama_orch.telemetry._logging import (
    JsonFormatter,
    PrettyFormatter,
    RedactingFilter,
    configure_logging,
    redact_records,
    stop_redacting_records,
)
from llama_orch.telemetry._metrics import OTHER, LabelGuard, Metrics, nvml_readings
from llama_orch.telemetry._ontime import StartErrors
from llama_orch.telemetry._tracing import CORRELATION_ATTRIBUTE, Tracing, TracingConfig, context_of, current_ids

__all__ = [
    "CORRELATION_ATTRIBUTE",
    "OTHER",
    "JsonFormatter",
    "LabelGuard",
    "Metrics",
    "PrettyFormatter",
    "RedactingFilter",
    "StartErrors",
    "TelemetryConfig",
    "Tracing",
    "TracingConfig",
    "configure_logging",
    "context_of",
    "current_ids",
    "nvml_readings",
    "redact_records",
    "stop_redacting_records",
]
