"""The replica registry over real HTTP: engine endpoints (the mock engine served in the llama.cpp
wire format on loopback) registered as remote replicas, heartbeats, silence, removal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from llama_orch.engines.mock import MockSettings
from llama_orch.server.config import OrchestratorConfig, PoolConfig
from tests.conftest import Serve, read_stream
from tests.server.test_app import error_of, submit

FAST = MockSettings(tokens_per_s=2000, first_token_ms=1, slots=1)
StartEngine = Callable[[MockSettings], Awaitable[str]]


def remote_only(timeout_s: float = 0.6) -> OrchestratorConfig:
    """A pool with no replica of its own: only registered ones serve it."""
    return OrchestratorConfig(
        server={"heartbeat_s": 0.2, "metrics_interval_s": 0.05, "event_retention_s": 0.4},
        registry={"heartbeat_interval_s": timeout_s / 4, "heartbeat_timeout_s": timeout_s},
        pools=[PoolConfig(id="default", replicas=0, mock=FAST)],
    )


def replica(name: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "pool": "default", "endpoint": endpoint, "model_ref": "mock:tiny", "slots": 1, **extra}


async def register(http: aiohttp.ClientSession, base: str, host: str, *replicas: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{base}/v1/replicas/register", json={"host": host, "replicas": list(replicas)}) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def replica_states(http: aiohttp.ClientSession, base: str) -> dict[str, dict[str, Any]]:
    async with http.get(f"{base}/v1/replicasets") as resp:
        return {r["id"]: r for r in (await resp.json())["replicasets"][0]["replicas"]}


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polling a remote state, bounded by the timeout
            await asyncio.sleep(0.05)


async def test_registered_replicas_serve_tasks(
    serve: Serve, http: aiohttp.ClientSession, mock_engine_server: StartEngine
) -> None:
    base = await serve(remote_only(timeout_s=30))
    a, b = await mock_engine_server(FAST), await mock_engine_server(FAST)
    ack = await register(
        http,
        base,
        "host-a",
        replica(
            "r0",
            a,
            devices=[0],
            gpus=[{"index": 0, "uuid": "GPU-a", "name": "x", "vram_total_bytes": 100, "vram_free_bytes": 60}],
        ),
    )
    assert ack["replicas"] == [{"id": "host-a.r0", "pool": "default"}]
    assert (ack["heartbeat_interval_s"], ack["heartbeat_timeout_s"]) == (7.5, 30)
    await register(http, base, "host-b", replica("r0", b))
    states = await replica_states(http, base)
    assert set(states) == {"host-a.r0", "host-b.r0"}
    assert (states["host-a.r0"]["host"], states["host-a.r0"]["vram_free_bytes"], states["host-a.r0"]["devices"]) == (
        "host-a",
        60,
        [0],
    )
    tasks = await asyncio.gather(*(submit(http, base, max_tokens=8, prompt=f"p{i}") for i in range(8)))
    streams = await asyncio.gather(*(read_stream(http, base, t["task_id"]) for t in tasks))
    assert all(events[-1].event == "end" for events in streams)
    used = {next(e.data["replica"] for e in events if e.event == "started") for events in streams}
    assert used == {"host-a.r0", "host-b.r0"}


async def test_refusals(serve: Serve, http: aiohttp.ClientSession, mock_engine_server: StartEngine) -> None:
    base = await serve(remote_only())
    url = await mock_engine_server(FAST)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"host": "h", "replicas": [{**replica("r0", url), "pool": "nope"}]}, 400, "UNKNOWN_POOL"),
        ({"host": "h", "replicas": [{**replica("r0", url), "model_ref": "hf:o/r"}]}, 409, "CONFLICT"),
        ({"host": "h", "replicas": [replica("r0", url), replica("r0", url)]}, 400, "INVALID_PARAMS"),
        ({"host": "h", "replicas": [replica("r0", "ftp://x")]}, 400, "INVALID_PARAMS"),
        ({"host": "h/../x", "replicas": [replica("r0", url)]}, 400, "INVALID_PARAMS"),
        ({"host": "h", "replicas": []}, 400, "INVALID_PARAMS"),
        ({"host": "h", "replicas": [replica("r0", url)], "extra": 1}, 400, "INVALID_PARAMS"),
    ]
    for body, status, code in cases:
        async with http.post(f"{base}/v1/replicas/register", json=body) as resp:
            await error_of(resp, status, code)
    assert await replica_states(http, base) == {}  # all or nothing: none was registered
    async with http.post(f"{base}/v1/replicas/h.r0/heartbeat", json={}) as resp:
        await error_of(resp, 404, "NOT_FOUND")
    async with http.delete(f"{base}/v1/replicas/h.r0") as resp:
        await error_of(resp, 404, "NOT_FOUND")


async def test_heartbeats_silence_and_removal(
    serve: Serve, http: aiohttp.ClientSession, mock_engine_server: StartEngine
) -> None:
    base = await serve(remote_only(timeout_s=0.6))
    a, b = await mock_engine_server(FAST), await mock_engine_server(FAST)
    await register(http, base, "host-a", replica("r0", a))
    await register(http, base, "host-b", replica("r0", b))

    async def beat(replica_id: str, **body: Any) -> dict[str, Any]:
        async with http.post(f"{base}/v1/replicas/{replica_id}/heartbeat", json=body) as resp:
            assert resp.status == 200, await resp.text()
            data: dict[str, Any] = await resp.json()
            return data

    # The host says its engine is unhealthy: out of placement at once, and back.
    assert (await beat("host-a.r0", ready=False))["state"] == "unready"
    assert (await replica_states(http, base))["host-a.r0"]["state"] == "unready"
    assert (await beat("host-a.r0", ready=True))["state"] == "ready"

    # host-a goes silent while host-b keeps heartbeating: host-a leaves placement.
    stop = asyncio.Event()

    async def keep_b_alive() -> None:
        while not stop.is_set():
            await beat("host-b.r0")
            await asyncio.sleep(0.1)

    alive = asyncio.create_task(keep_b_alive())
    try:

        async def a_is_out() -> bool:
            return (await replica_states(http, base))["host-a.r0"]["state"] == "unready"

        await wait_for(a_is_out)
        tasks = await asyncio.gather(*(submit(http, base, max_tokens=4, prompt=f"q{i}") for i in range(6)))
        streams = await asyncio.gather(*(read_stream(http, base, t["task_id"]) for t in tasks))
        assert all(events[-1].event == "end" for events in streams)
        assert {next(e.data["replica"] for e in ev if e.event == "started") for ev in streams} == {"host-b.r0"}
        # A heartbeat after the silence brings it back.
        assert (await beat("host-a.r0"))["state"] == "ready"
    finally:
        stop.set()
        await alive

    # Registering again without a replica removes it; DELETE removes the rest.
    await register(http, base, "host-b", replica("r1", b))
    assert set(await replica_states(http, base)) == {"host-a.r0", "host-b.r1"}
    async with http.delete(f"{base}/v1/replicas/host-a.r0") as resp:
        assert resp.status == 204
    assert set(await replica_states(http, base)) == {"host-b.r1"}


async def test_tasks_wait_for_a_replica_to_register(
    serve: Serve, http: aiohttp.ClientSession, mock_engine_server: StartEngine
) -> None:
    base = await serve(remote_only(timeout_s=30))
    async with http.get(f"{base}/v1/capabilities") as resp:
        assert resp.status == 200, await resp.text()
    task = await submit(http, base, max_tokens=3)  # no replica yet: queued
    await register(http, base, "late", replica("r0", await mock_engine_server(FAST)))
    events = await read_stream(http, base, task["task_id"])
    assert events[-1].event == "end"
    assert next(e.data["replica"] for e in events if e.event == "started") == "late.r0"
