"""Pool management: pool and model configuration, building and supervising engine replicas
(managed llama-server processes), model provisioning, GPU inventory, and the pool-managerd host
agent. Nothing here imports the server or the scheduler."""

from __future__ import annotations

from llama_orch.pools._build import build_engine
from llama_orch.pools._cache import Progress
from llama_orch.pools._config import EMBEDDED_MODEL_REF, ModelsConfig, PoolConfig, QueueConfig, RestartPolicy
from llama_orch.pools._download import download, redact_url
from llama_orch.pools._inventory import (
    FakeInventory,
    GpuDevice,
    Inventory,
    NvmlInventory,
    cpu_inventory,
    detect,
    parse_device_mask,
)
from llama_orch.pools._managed import EngineStartError, ManagedLlamaCpp
from llama_orch.pools._models import EMBEDDED_MODELS, ModelRef, parse_model_ref, resolve_model
from llama_orch.pools._provision import PreflightError

__all__ = [
    "EMBEDDED_MODELS",
    "EMBEDDED_MODEL_REF",
    "EngineStartError",
    "FakeInventory",
    "GpuDevice",
    "Inventory",
    "ManagedLlamaCpp",
    "ModelRef",
    "ModelsConfig",
    "NvmlInventory",
    "PoolConfig",
    "PreflightError",
    "Progress",
    "QueueConfig",
    "RestartPolicy",
    "build_engine",
    "cpu_inventory",
    "detect",
    "download",
    "parse_device_mask",
    "parse_model_ref",
    "redact_url",
    "resolve_model",
]
