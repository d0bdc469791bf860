"""GPU inventory: NVML readings (through a stand-in for the pynvml bindings, since these machines
have no NVIDIA GPU), the CPU fallback and its log line, the fake inventory, device masks."""

from __future__ import annotations

import logging
import types
from dataclasses import dataclass

import pytest

from llama_orch.pools._inventory import (
    FakeInventory,
    GpuDevice,
    NvmlInventory,
    cpu_inventory,
    detect,
    parse_device_mask,
)

GIB = 2**30


class NVMLError(Exception):
    pass


@dataclass
class _Memory:
    total: int
    free: int
    used: int = 0


@dataclass
class _Util:
    gpu: int
    memory: int = 0


def fake_nvml(gpus: list[dict[str, object]], *, init_error: str | None = None) -> types.ModuleType:
    """The slice of pynvml the inventory calls, answering from ``gpus``; counts init/shutdown."""
    nvml = types.ModuleType("pynvml")
    calls = {"init": 0, "shutdown": 0}

    def init() -> None:
        if init_error is not None:
            raise NVMLError(init_error)
        calls["init"] += 1

    def utilization(handle: int) -> _Util:
        util = gpus[handle].get("util")
        if util is None:
            raise NVMLError("Not Supported")
        assert isinstance(util, int)
        return _Util(util)

    nvml.NVMLError = NVMLError  # type: ignore[attr-defined]
    nvml.calls = calls  # type: ignore[attr-defined]
    nvml.nvmlInit = init  # type: ignore[attr-defined]
    nvml.nvmlShutdown = lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUUID = lambda h: gpus[h]["uuid"]  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetName = lambda h: gpus[h]["name"]  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = lambda h: _Memory(gpus[h]["total"], gpus[h]["free"])  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUtilizationRates = utilization  # type: ignore[attr-defined]
    return nvml


GPUS: list[dict[str, object]] = [
    {"uuid": "GPU-aaaa", "name": "NVIDIA GeForce RTX 3090", "total": 24 * GIB, "free": 20 * GIB, "util": 35},
    # Older bindings return bytes; a device may not report utilization.
    {"uuid": b"GPU-bbbb", "name": b"NVIDIA GeForce RTX 3060", "total": 12 * GIB, "free": 3 * GIB, "util": None},
]


def test_nvml_inventory_reads_every_device() -> None:
    nvml = fake_nvml(GPUS)
    inventory = NvmlInventory(nvml)
    assert inventory.kind == "nvml"
    assert inventory.devices() == [
        GpuDevice(0, "GPU-aaaa", "NVIDIA GeForce RTX 3090", 24 * GIB, 20 * GIB, 35),
        GpuDevice(1, "GPU-bbbb", "NVIDIA GeForce RTX 3060", 12 * GIB, 3 * GIB, None),
    ]
    GPUS[0]["free"] = 5 * GIB  # readings are fresh each time
    try:
        assert inventory.devices()[0].vram_free_bytes == 5 * GIB
    finally:
        GPUS[0]["free"] = 20 * GIB
    inventory.close()
    inventory.close()
    assert nvml.calls == {"init": 1, "shutdown": 1}  # type: ignore[attr-defined]
    assert inventory.devices() == []


def test_detect_uses_nvml_when_a_gpu_is_present(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "llama_orch.pools.inventory")
    inventory = detect(fake_nvml(GPUS))
    assert inventory.kind == "nvml"
    assert [d.uuid for d in inventory.devices()] == ["GPU-aaaa", "GPU-bbbb"]
    assert "found 2 NVIDIA GPU(s)" in caplog.text
    inventory.close()


@pytest.mark.parametrize(
    ("nvml", "says"),
    [
        (fake_nvml([], init_error="NVML Shared Library Not Found"), "NVML unavailable: NVMLError: NVML Shared Library"),
        (fake_nvml([]), "NVML sees 0 devices"),
    ],
)
def test_detect_falls_back_to_cpu_and_says_so(
    nvml: types.ModuleType, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "llama_orch.pools.inventory")
    inventory = detect(nvml)
    assert (inventory.kind, inventory.devices()) == ("cpu", [])
    assert "no NVIDIA GPU found" in caplog.text and "pools run on CPU" in caplog.text
    assert says in caplog.text


def test_detect_on_this_machine_never_raises() -> None:
    inventory = detect()
    try:
        assert inventory.kind in ("nvml", "cpu")
        assert all(d.vram_free_bytes <= d.vram_total_bytes for d in inventory.devices())
    finally:
        inventory.close()


def test_fake_inventory_moves_its_readings() -> None:
    fake = FakeInventory([GpuDevice(1, "GPU-b", "b", 8 * GIB, 8 * GIB), GpuDevice(0, "GPU-a", "a", 8 * GIB, 1 * GIB)])
    assert [d.index for d in fake.devices()] == [0, 1]
    fake.set_free(0, 7 * GIB)
    fake.set_utilization(1, 90)
    assert (fake.devices()[0].vram_free_bytes, fake.devices()[1].utilization_pct) == (7 * GIB, 90)
    assert cpu_inventory().devices() == []


def test_parse_device_mask() -> None:
    devices = [GpuDevice(0, "GPU-aaaa", "a", GIB, GIB), GpuDevice(1, "GPU-bbbb", "b", GIB, GIB)]
    assert parse_device_mask(None, devices) is None
    assert parse_device_mask(" ", devices) is None
    assert parse_device_mask("1", devices) == frozenset({1})
    assert parse_device_mask("0, GPU-bbbb", devices) == frozenset({0, 1})
    with pytest.raises(ValueError, match="GPU-zzzz"):
        parse_device_mask("GPU-zzzz", devices)
