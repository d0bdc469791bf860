"""The scheduler's configuration: sessions (``sessions:``) and registered replicas
(``registry:``) as they appear in orchestratord's YAML, and :class:`SchedulerSettings`, the
settings the scheduler runs with, which the server builds from its whole configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


class JournalConfig(StrictModel):
    """The task journal in ``<data_dir>/tasks.sqlite3``: admitted tasks, their events, sessions and
    budgets survive a crash of orchestratord (see README "Durable tasks"). Off when data_dir is null."""

    enabled: bool = Field(default=True, description="Journal tasks when a data_dir is set.")
    synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="'normal': a commit survives a crash of orchestratord (SIGKILL included) but not a power "
        "loss; 'full': also a power loss or kernel crash, at the cost of an fsync per group commit.",
    )
    commit_interval_ms: float = Field(
        default=1.0,
        ge=0,
        le=1000,
        description="How long a group commit waits to gather more changes once one arrives (latency added to "
        "each 202 and each token, in exchange for fewer, larger commits).",
    )


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
    journal: JournalConfig = field(default_factory=JournalConfig)
    orphan_timeout_s: float | None = 300.0
    """A task whose stream nobody has read for this long is cancelled (None: never)."""


__all__ = ["JournalConfig", "RegistryConfig", "SchedulerSettings", "SessionConfig"]
