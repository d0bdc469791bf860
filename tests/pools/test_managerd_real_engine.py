"""orchestratord plus two pool-managerd hosts on loopback, each running a real ``llama-server`` on the
embedded Gemma 3 270M model (``--engine llamacpp``, one thread each), registered into one pool with
no local replicas.

Tasks are served by both hosts; ``kill -9`` of host A's llama-server takes it out of placement at
once (its heartbeat reports the supervisor's state), new work goes to host B, and A's supervisor
restarts it (a new pid, a new port, registered again); ``kill -9`` of host B's agent itself is
noticed by the heartbeat timeout (its llama-server dies with it) and new work goes to A. SIGTERM
withdraws A's replica and stops its llama-server. Every process is stopped by pid in ``finally``.
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

from llama_orch.server.config import EMBEDDED_MODEL_REF, ModelsConfig, OrchestratorConfig, PoolConfig
from tests._engine import MODEL_CACHE, gemma_model
from tests.conftest import Serve, read_stream
from tests.server.test_app import submit

pytestmark = [pytest.mark.real_engine, pytest.mark.subprocess]

POOL = "gemma"
LOAD_TIMEOUT_S = 180.0
"""Bounds, not expectations: two llama-servers load in seconds, but the host's 2 cores are shared."""


class Host:
    """One pool-managerd process, its log and its status file (which names its llama-server's pid)."""

    def __init__(self, base: str, name: str, tmp: Path) -> None:
        self.name = name
        self.log = tmp / f"{name}.log"
        self.status_file = tmp / f"{name}.status.json"
        args = [sys.executable, "-m", "llama_orch.pools._managerd", "--orchestrator", base, "--name", name]
        args += ["--pool", POOL, "--engine", "llamacpp", "--model-ref", EMBEDDED_MODEL_REF, "--replicas", "1"]
        args += ["--slots", "1", "--ctx", "512", "--threads", "1", "--bind", "127.0.0.1", "--accelerator", "cpu"]
        args += ["--models-dir", str(MODEL_CACHE), "--offline", "--status-file", str(self.status_file)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.engine_pids: set[int] = set()

    def status(self) -> dict[str, Any] | None:
        try:
            status: dict[str, Any] = json.loads(self.status_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        self.engine_pids.update(r["engine_pid"] for r in status["replicas"] if r["engine_pid"])
        return status

    def engine_pid(self) -> int | None:
        status = self.status()
        replica = status["replicas"][0] if status else None
        return int(replica["engine_pid"]) if replica and replica["state"] == "ready" and replica["engine_pid"] else None

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (rc={self.proc.poll()}) ---\n" + "\n".join(text.splitlines()[-lines:])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody has reaped yet is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_llama_server(pid: int) -> bool:
    try:
        return b"llama-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    started: list[Host] = []
    yield started
    for host in started:
        host.status()
        if host.proc.poll() is None:
            os.kill(host.proc.pid, signal.SIGKILL)
        host.proc.wait(timeout=10)
    # The engines die with their agent (PR_SET_PDEATHSIG); make sure, by pid.
    for host in started:
        for pid in host.engine_pids:
            if alive(pid) and is_llama_server(pid):
                os.kill(pid, signal.SIGKILL)


async def replica_states(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with http.get(f"{base}/v1/replicasets") as resp:
        sets = (await resp.json())["replicasets"]
    return {r["id"]: r["state"] for s in sets if s["pool"] == POOL for r in s["replicas"]}


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, hosts: list[Host], timeout_s: float = 60.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 - polling other processes, bounded by the timeout
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n" + "\n".join(h.tail() for h in hosts))


async def run_task(http: aiohttp.ClientSession, base: str, prompt: str) -> tuple[str, str]:
    """Submit one task and read it to its end: (the replica that served it, its last event)."""
    task = await submit(http, base, prompt=prompt, max_tokens=4)
    events = await read_stream(http, base, task["task_id"])
    started = [e.data["replica"] for e in events if e.event == "started"]
    return (started[-1] if started else "none"), events[-1].event


@pytest.mark.timeout(600)
async def test_two_real_hosts_survive_a_killed_engine_and_a_killed_agent(
    serve: Serve, http: aiohttp.ClientSession, hosts: list[Host], tmp_path: Path
) -> None:
    gemma_model()  # skips (locally) or fails (CI) when the engine or the model is missing
    config = OrchestratorConfig(
        server={"heartbeat_s": 0.5, "metrics_interval_s": 0.2},
        registry={"heartbeat_interval_s": 0.25, "heartbeat_timeout_s": 3.0},
        models=ModelsConfig(cache_dir=str(MODEL_CACHE), allow_network=False),
        pools=[PoolConfig(id=POOL, engine="llamacpp", model_ref=EMBEDDED_MODEL_REF, replicas=0, slots=1, ctx_max=512)],
    )
    base = await serve(config)
    a, b = Host(base, "host-a", tmp_path), Host(base, "host-b", tmp_path)
    hosts += [a, b]

    async def both_ready() -> bool:
        return await replica_states(http, base) == {"host-a.r0": "ready", "host-b.r0": "ready"}

    await wait_for(both_ready, "both hosts to register their llama-servers", hosts, LOAD_TIMEOUT_S)
    first_a, first_b = a.engine_pid(), b.engine_pid()
    assert first_a is not None and first_b is not None and is_llama_server(first_a) and is_llama_server(first_b)

    # One slot per host: four tasks at once are served by both.
    served = await asyncio.gather(*(run_task(http, base, f"Count to {i}:") for i in range(4)))
    assert {end for _, end in served} == {"end"}
    assert {replica for replica, _ in served} == {"host-a.r0", "host-b.r0"}

    # kill -9 host A's llama-server: A reports it unready at once, and new work goes to B.
    os.kill(first_a, signal.SIGKILL)

    async def a_unready() -> bool:
        return (await replica_states(http, base)).get("host-a.r0") != "ready"

    await wait_for(a_unready, "host-a's dead engine to leave placement", hosts)
    assert await run_task(http, base, "Name a color:") == ("host-b.r0", "end")

    # A's supervisor restarts it (a new process on a new port) and A registers it again.
    async def a_restarted() -> bool:
        pid = a.engine_pid()
        return pid not in (None, first_a) and (await replica_states(http, base)).get("host-a.r0") == "ready"

    await wait_for(a_restarted, "host-a's llama-server to be restarted and registered again", hosts, LOAD_TIMEOUT_S)
    status = a.status()
    assert status is not None and status["replicas"][0]["restarts"] >= 1
    second_a = a.engine_pid()
    assert second_a is not None and is_llama_server(second_a)

    # kill -9 host B's agent: its llama-server dies with it, orchestratord notices by the
    # heartbeat timeout, and new work goes to A's restarted engine.
    os.kill(b.proc.pid, signal.SIGKILL)
    b.proc.wait(timeout=10)

    async def b_silent() -> bool:
        return (await replica_states(http, base)).get("host-b.r0") == "unready"

    await wait_for(b_silent, "host-b's replica to time out", hosts)

    async def b_engine_gone() -> bool:
        return not alive(first_b)

    await wait_for(b_engine_gone, "host-b's llama-server to die with its agent", hosts)
    served = await asyncio.gather(*(run_task(http, base, f"Say {word}:") for word in ("yes", "no")))
    assert served == [("host-a.r0", "end"), ("host-a.r0", "end")]

    # SIGTERM: A withdraws its replica, then stops its llama-server by pid, and exits 0.
    os.kill(a.proc.pid, signal.SIGTERM)
    assert a.proc.wait(timeout=30) == 0, a.tail()
    assert "host-a.r0" not in await replica_states(http, base)
    assert not alive(second_a)
    final = a.status()
    assert final is not None and final["replicas"][0]["state"] == "stopped"
