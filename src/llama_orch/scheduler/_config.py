"""The scheduler's configuration: sessions (``sessions:``) and registered replicas
(``registry:``) as they appear in orchestratord's YAML, and :class:`SchedulerSettings`, the
settings the scheduler runs with, which the server builds from its whole configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field, model_validator

from llama_orch._config import StrictModel
from llama_orch.pools import ModelsConfig, PoolConfig
from llama_orch_api import BudgetSpec


class SessionConfig(StrictModel):
    ttl_s: float = Field(default=600.0, gt=0)
    max_turns: int | None = Field(default=None, ge=1, description="Tasks a session may run; unlimited when null.")
    default_budget: BudgetSpec | None = Field(
        default=None, description="Budget of sessions whose first task sets none; unlimited when null."
    )


class RegistryConfig(StrictModel):
    """Replicas registered by pool-managerd hosts (``POST /v1/replicas/register``)."""

    heartbeat_interval_s: float = Field(default=2.0, gt=0, description="How often hosts heartbeat each replica.")
    heartbeat_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A replica not heard from for this long leaves placement (its tasks go elsewhere) until its "
        "host heartbeats again.",
    )

    @model_validator(mode="after")
    def _timeout_above_interval(self) -> RegistryConfig:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must be longer than heartbeat_interval_s")
        return self


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """What the scheduler runs with (``OrchestratorConfig.scheduler_settings()`` builds it)."""

    pools: tuple[PoolConfig, ...]
    sessions: SessionConfig = field(default_factory=SessionConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    data_dir: str | None = None
    """Where durable state is kept; None: nothing outlives the process."""
    metrics_interval_s: float = 1.0
    """How often a decoding task emits a ``metrics`` event."""
    event_retention_s: float = 300.0
    """How long a finished task's events stay readable."""
    max_retained_tasks: int = 100_000
    max_body_bytes: int = 1_048_576
    """Reported in capabilities' rate limits (the server enforces it)."""


__all__ = ["RegistryConfig", "SchedulerSettings", "SessionConfig"]
