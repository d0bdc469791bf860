"""GPU inventory: which NVIDIA devices this host has, their VRAM (total, free) and utilization.

Read through NVML (NVIDIA's management library, via the ``nvidia-ml-py`` bindings, module
``pynvml``) when a driver is present; otherwise the inventory is empty and pools run on CPU, which
:func:`detect` says plainly in the log. :class:`FakeInventory` is built from data, for tests and for
hosts whose devices are described by configuration.

Example::

    inventory = detect()
    for gpu in inventory.devices():
        print(gpu.index, gpu.name, gpu.vram_free_bytes // 2**20, "MiB free")
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Protocol

log = logging.getLogger("llama_orch.pools.inventory")


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One device, as of the moment it was read."""

    index: int
    uuid: str
    name: str
    vram_total_bytes: int
    vram_free_bytes: int
    utilization_pct: int | None = None
    """GPU busy percentage over NVML's last sample period; None when the device does not say."""


class Inventory(Protocol):
    """What placement and metrics ask of a host's GPUs."""

    @property
    def kind(self) -> str:
        """``nvml``, ``fake`` or ``cpu``."""
        ...

    def devices(self) -> list[GpuDevice]:
        """A fresh reading of every device (empty on a CPU-only host)."""
        ...

    def close(self) -> None: ...


class FakeInventory:
    """An inventory made from data; :meth:`set_free` / :meth:`set_utilization` move its readings."""

    def __init__(self, devices: list[GpuDevice] | None = None, *, kind: str = "fake") -> None:
        self._devices = {d.index: d for d in devices or []}
        self._kind = kind

    @property
    def kind(self) -> str:
        return self._kind

    def devices(self) -> list[GpuDevice]:
        return [self._devices[i] for i in sorted(self._devices)]

    def set_free(self, index: int, vram_free_bytes: int) -> None:
        self._devices[index] = replace(self._devices[index], vram_free_bytes=vram_free_bytes)

    def set_utilization(self, index: int, utilization_pct: int | None) -> None:
        self._devices[index] = replace(self._devices[index], utilization_pct=utilization_pct)

    def close(self) -> None:
        pass


def cpu_inventory() -> FakeInventory:
    """The inventory of a host without NVIDIA GPUs."""
    return FakeInventory([], kind="cpu")


class NvmlInventory:
    """Live readings through NVML. Raises the bindings' ``NVMLError`` (or ImportError) when NVML
    cannot start; :func:`detect` turns that into a CPU-only inventory."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        if nvml is None:
            import pynvml  # type: ignore[import-untyped]  # the bindings ship no type information

            nvml = pynvml
        self._nvml: Any = nvml
        self._lock = threading.Lock()  # NVML handles are process-wide; readings may come from threads
        self._nvml.nvmlInit()
        self._open = True

    @property
    def kind(self) -> str:
        return "nvml"

    def devices(self) -> list[GpuDevice]:
        nvml = self._nvml
        with self._lock:
            if not self._open:
                return []
            out = []
            for index in range(int(nvml.nvmlDeviceGetCount())):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                try:
                    utilization: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                except nvml.NVMLError:  # not supported on every device (e.g. some MIG slices)
                    utilization = None
                out.append(
                    GpuDevice(
                        index=index,
                        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                        name=_text(nvml.nvmlDeviceGetName(handle)),
                        vram_total_bytes=int(memory.total),
                        vram_free_bytes=int(memory.free),
                        utilization_pct=utilization,
                    )
                )
            return out

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self._nvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def detect(nvml: ModuleType | None = None) -> Inventory:
    """NVML's inventory when an NVIDIA GPU is present, else an empty CPU-only one (logged)."""
    try:
        inventory = NvmlInventory(nvml)
        devices = inventory.devices()
    except Exception as exc:  # NVMLError (no driver, no library), ImportError: all mean "no GPU here"
        log.info(
            "no NVIDIA GPU found (NVML unavailable: %s): pools run on CPU",
            _describe(exc),
            extra={"narration": "running on CPU"},
        )
        return cpu_inventory()
    if not devices:
        inventory.close()
        log.info("no NVIDIA GPU found (NVML sees 0 devices): pools run on CPU", extra={"narration": "running on CPU"})
        return cpu_inventory()
    log.info(
        "found %d NVIDIA GPU(s): %s",
        len(devices),
        "; ".join(f"{d.index}: {d.name}, {d.vram_free_bytes / 2**30:.1f} of {d.vram_total_bytes / 2**30:.1f} GiB free"
                  for d in devices),
    )  # fmt: skip
    return inventory


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_device_mask(mask: str | None, devices: list[GpuDevice]) -> frozenset[int] | None:
    """Device indices named by a ``CUDA_VISIBLE_DEVICES``-style mask (indices or ``GPU-`` UUIDs,
    comma-separated); None for no mask (any device). Unknown entries raise ValueError."""
    if mask is None or not mask.strip():
        return None
    by_uuid = {d.uuid: d.index for d in devices}
    chosen = set()
    for raw in mask.split(","):
        item = raw.strip()
        if item.isdigit():
            chosen.add(int(item))
        elif item in by_uuid:
            chosen.add(by_uuid[item])
        else:
            raise ValueError(f"device mask entry {item!r} is neither an index nor a known GPU UUID")
    return frozenset(chosen)


__all__ = [
    "FakeInventory",
    "GpuDevice",
    "Inventory",
    "NvmlInventory",
    "cpu_inventory",
    "detect",
    "parse_device_mask",
]
