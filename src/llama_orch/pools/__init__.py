"""Pool management: model provisioning, GPU inventory, and the pool-managerd host agent."""

from __future__ import annotations

from llama_orch.pools._cache import Progress
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
from llama_orch.pools._models import EMBEDDED_MODELS, ModelRef, parse_model_ref, resolve_model

__all__ = [
    "EMBEDDED_MODELS",
    "FakeInventory",
    "GpuDevice",
    "Inventory",
    "ModelRef",
    "NvmlInventory",
    "Progress",
    "cpu_inventory",
    "detect",
    "download",
    "parse_device_mask",
    "parse_model_ref",
    "redact_url",
    "resolve_model",
]
