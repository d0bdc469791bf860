"""Two pool-managerd processes on loopback, each serving a mock engine over HTTP, registered with one
orchestratord: tasks spread over both; one is killed (SIGKILL, by pid) mid-stream — its running task
ends with WORKER_RESET, its replica leaves placement after the heartbeat timeout, and tasks still
succeed on the other; the survivor withdraws its replica when stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llama_orch.engines.mock import MockSettings
from llama_orch.pools._managerd import parse_args
from llama_orch.server.config import OrchestratorConfig, PoolConfig
from tests.conftest import Serve, read_stream
from tests.server.test_app import submit

pytestmark = pytest.mark.subprocess


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
