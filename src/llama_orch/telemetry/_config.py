"""The ``telemetry:`` section of the orchestratord config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llama_orch.telemetry._tracing import TracingConfig


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: bool = Field(True, description="Serve GET /metrics (Prometheus) and record the metrics.")
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    log_format: Literal["auto", "json", "pretty"] = Field(
        "auto", description="auto: pretty lines on a TTY, JSON lines otherwise."
    )
