"""ReplicaSupervisor against a real llama-server (loopback) on the embedded Gemma 3 270M model:
readiness, restart after kill -9 with backoff, restart storms, hung engines, start failures, stop by pid."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from llama_orch.pools._supervisor import LaunchSpec, ReplicaState, ReplicaSupervisor, RestartBackoff
from tests._engine import gemma_model, llama_server

pytestmark = pytest.mark.real_engine

Make = Callable[..., ReplicaSupervisor]


def spec(model: Path | None = None, **overrides: object) -> LaunchSpec:
    fields: dict[str, object] = {
        "binary": llama_server(),
        "model": model or gemma_model(),
        "model_ref": "embedded:gemma3-270m",
        "slots": 2,
        "ctx_per_slot": 1024,
        "threads": 2,
        "gpu_layers": 0,
        "env": {"CUDA_VISIBLE_DEVICES": ""},
    }
    fields.update(overrides)
    return LaunchSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[ReplicaSupervisor] = []

    def _make(launch: LaunchSpec | None = None, **kwargs: object) -> ReplicaSupervisor:
        kwargs.setdefault("backoff", RestartBackoff(max_restarts=3, window_s=60, initial_s=0.05, max_s=0.2))
        kwargs.setdefault("health_interval_s", 0.2)
        sup = ReplicaSupervisor(f"test/r{len(made)}", launch or spec(), **kwargs)  # type: ignore[arg-type]
        made.append(sup)
        return sup

    yield _make
    for sup in made:
        await sup.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for(predicate: Callable[[], bool], within: float = 120) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling a state another task moves
            await asyncio.sleep(0.02)


async def test_ready_after_health_and_probe_then_stopped_by_pid(make: Make) -> None:
    states: list[ReplicaState] = []
    sup = make(on_change=lambda s: states.append(s.state))
    assert await sup.start()
    assert sup.ready and sup.pid is not None and sup.port is not None
    assert sup.slots == 2 and sup.ctx_per_slot == 1024  # read back from the server's /props
    assert sup.props["default_generation_settings"]["n_ctx"] == 1024
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{sup.port}/health") as resp:
        assert resp.status == 200
    pid = sup.pid
    await sup.stop()
    assert sup.state is ReplicaState.stopped and not alive(pid)
    assert states == [ReplicaState.ready, ReplicaState.stopped]


async def test_kill_9_is_restarted_with_a_new_process(make: Make) -> None:
    sup = make()
    assert await sup.start()
    first = sup.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await wait_for(lambda: sup.state is not ReplicaState.ready)
    assert not sup.ready
    await wait_for(lambda: sup.ready)
    assert sup.pid not in (None, first) and sup.restarts == 1
    assert sup.last_error is not None and "killed by SIGKILL" in sup.last_error


async def test_restart_storm_marks_the_replica_failed(make: Make) -> None:
    sup = make(backoff=RestartBackoff(max_restarts=1, window_s=600, initial_s=0.05, max_s=0.1))
    assert await sup.start()
    for _ in range(2):
        await wait_for(lambda: sup.ready)
        assert sup.pid is not None
        os.kill(sup.pid, signal.SIGKILL)
        await wait_for(lambda: not sup.ready)
    await wait_for(lambda: sup.state is ReplicaState.failed)
    assert sup.last_error is not None
    assert "2 crashes within 600 s (limit 1)" in sup.last_error and "until a reload" in sup.last_error
    assert sup.pid is None


async def test_a_failed_replica_is_tried_again_after_its_cool_down(make: Make) -> None:
    states: list[ReplicaState] = []
    backoff = RestartBackoff(max_restarts=0, window_s=600, initial_s=0.05, max_s=0.1, cooldown_s=0.5)
    sup = make(backoff=backoff, on_change=lambda s: states.append(s.state))
    assert await sup.start()
    first = sup.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await wait_for(lambda: sup.state is ReplicaState.failed)
    assert sup.last_error is not None and "trying again after a cool-down of 0.5 s" in sup.last_error
    await wait_for(lambda: sup.ready)
    assert sup.pid not in (None, first)
    assert states[:2] == [ReplicaState.ready, ReplicaState.failed] and states[-1] is ReplicaState.ready


async def test_a_hung_engine_is_killed_and_restarted(make: Make) -> None:
    sup = make(check_timeout_s=0.3)
    assert await sup.start()
    hung = sup.pid
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)  # alive but answering nothing: only health checks can tell
    await wait_for(lambda: sup.state is ReplicaState.restarting)
    assert sup.last_error is not None and "failed 3 health checks in a row; killed it" in sup.last_error
    await wait_for(lambda: sup.ready)
    assert sup.pid != hung and not alive(hung)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"GGUF" + b"\0" * 4096, "exited with status"),  # right magic, nonsense after it
        (b"not a model at all", "exited with status"),
    ],
    ids=["corrupt-gguf", "not-gguf"],
)
async def test_a_model_that_does_not_load_fails_without_a_storm(
    make: Make, tmp_path: Path, content: bytes, needle: str
) -> None:
    model = tmp_path / "bad.gguf"
    model.write_bytes(content)
    sup = make(spec(model))
    assert not await sup.start()
    assert sup.state is ReplicaState.failed and sup.restarts == 1  # one retry, then it gives up
    assert sup.last_error is not None and needle in sup.last_error and "while loading" in sup.last_error


async def test_a_binary_that_cannot_run_fails_at_once(make: Make, tmp_path: Path) -> None:
    sup = make(spec(binary=tmp_path / "no-such-llama-server"))
    assert not await sup.start()
    assert sup.state is ReplicaState.failed and sup.last_error is not None
    assert "cannot start llama-server" in sup.last_error


async def test_check_now_after_a_crash_takes_the_replica_out_at_once(make: Make) -> None:
    sup = make(health_interval_s=30)  # the periodic check would be far too late
    assert await sup.start()
    assert sup.pid is not None
    os.kill(sup.pid, signal.SIGKILL)
    await sup.check_now()
    assert not sup.ready and sup.state is ReplicaState.restarting
    await wait_for(lambda: sup.ready)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    backoff = RestartBackoff(initial_s=1, max_s=8)
    for restart, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = [backoff.delay(restart) for _ in range(200)]
        assert all(0.1 <= d <= cap for d in delays)
        assert len(set(delays)) > 1  # jitter: restarts of many replicas do not line up


def test_command_line() -> None:
    launch = LaunchSpec(Path("/bin/llama-server"), Path("/m.gguf"), "m", 4, 2048, 3, 0, {}, ("--no-warmup",))
    argv = launch.argv(8123)
    assert argv[:3] == ["/bin/llama-server", "--model", "/m.gguf"]
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "8123"
    assert (pairs["--ctx-size"], pairs["--parallel"], pairs["--threads"]) == ("8192", "4", "3")
    assert pairs["--n-gpu-layers"] == "0" and argv[-1] == "--no-warmup"
