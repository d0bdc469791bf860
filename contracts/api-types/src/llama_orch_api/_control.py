"""Control-plane wire models: budgets, pools (health, drain, reload), replica sets, SLO snapshots."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from llama_orch_api._numbers import Float, Int


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


PoolState = Literal["ready", "draining", "drained", "reloading", "unready"]


class BudgetSpec(_Request):
    """Limits for a session (OC-CLI-2402); set by the first task that names the session."""

    tokens: Int | None = Field(default=None, ge=1, description="Output tokens the session may use.")
    wall_ms: Int | None = Field(default=None, ge=1, description="Decode wall time the session may use.")
    cost: Float | None = Field(default=None, ge=0, description="Cost, at each pool's price per token.")


class BudgetInfo(_Response):
    """A session's limits, use and reservations; ``*_remaining`` is null when unlimited."""

    tokens_limit: int | None = None
    tokens_used: int = 0
    tokens_reserved: int = 0
    tokens_remaining: int | None = None
    wall_ms_limit: int | None = None
    wall_ms_used: int = 0
    wall_ms_remaining: int | None = None
    cost_limit: float | None = None
    cost_used: float = 0.0
    cost_reserved: float = 0.0
    cost_remaining: float | None = None


class DrainRequest(_Request):
    deadline_ms: Int = Field(default=30_000, ge=0, le=86_400_000)
    wait: StrictBool = Field(
        default=True,
        description="Answer when the drain has finished (`200`); false answers `202` at once, and the "
        "pool's health (`GET /v1/pools/{id}/health`) shows it `draining`, then `drained`.",
    )


class ReloadRequest(_Request):
    model_ref: str = Field(min_length=1, max_length=512)
    deadline_ms: Int = Field(default=60_000, ge=0, le=86_400_000)


class ReplicaStatus(_Response):
    id: str
    state: PoolState
    model_ref: str
    slots_total: int = Field(ge=0)
    slots_free: int = Field(ge=0)
    devices: list[int] | None = None
    vram_total_bytes: int | None = Field(default=None, ge=0)
    vram_free_bytes: int | None = Field(default=None, ge=0)
    gpu_utilization_pct: int | None = Field(default=None, ge=0, le=100)
    host: str | None = None


class PoolHealth(_Response):
    pool: str
    state: PoolState
    live: bool
    ready: bool
    model_ref: str
    engine: str
    engine_version: str
    replicas: list[ReplicaStatus]
    queue_depth: int = Field(ge=0)
    active: int = Field(ge=0)
    drain_deadline_ms: int | None = None
    last_error: str | None = None


class PoolOperation(_Response):
    """Outcome of a drain or reload (the call returns when it has finished or rolled back), or,
    for a drain asked not to wait, the drain that has ``started``."""

    pool: str
    operation: Literal["drain", "reload"]
    outcome: Literal["completed", "rolled_back", "started"]
    state: PoolState
    model_ref: str
    previous_model_ref: str | None = None
    finished_tasks: int = Field(default=0, ge=0)
    cancelled_tasks: int = Field(default=0, ge=0)
    duration_ms: int = Field(ge=0)
    message: str


class SloSnapshot(_Response):
    """Recent service levels of a pool, over the last ``window_s`` seconds (at most 1,000 tasks)."""

    window_s: float
    samples: int = Field(ge=0)
    first_token_ms_p50: float | None = None
    first_token_ms_p95: float | None = None
    decode_tokens_per_s_p50: float | None = None
    decode_tokens_per_s_p95: float | None = None


class ReplicaSet(_Response):
    pool: str
    engine: str
    engine_version: str
    model_ref: str
    state: PoolState
    load: float = Field(ge=0, description="Busy slots / all slots.")
    slots_total: int = Field(ge=0)
    slots_free: int = Field(ge=0)
    queue_depth: int = Field(ge=0)
    queue_capacity: int = Field(ge=1)
    replicas: list[ReplicaStatus]
    slo: SloSnapshot


class ReplicaSetList(_Response):
    replicasets: list[ReplicaSet]


class SamplerProfile(_Response):
    """A stable sampler profile name (OC-CLI-2902): the parameters it stands for, and notes."""

    name: str
    params: dict[str, float | int]
    deterministic: bool
    notes: str


class RateLimits(_Response):
    queue_capacity: int
    queue_policy: Literal["reject", "drop-lru"]
    max_body_bytes: int


class FeatureFlags(_Response):
    determinism: list[Literal["strict", "best_effort"]]
    cancel: bool = True
    sse_resume: bool = True
    kv_reuse: bool = False
    embeddings: bool = False
    budgets: bool = True
