"""Placement inside a running orchestratord: replicas chosen by free VRAM from the (fake) GPU
inventory, unhealthy replicas skipped, session affinity and failover with kv_warmth surfaced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llama_orch.engines.mock import MockSettings
from llama_orch.pools import FakeInventory, GpuDevice
from llama_orch.scheduler import Orchestrator
from llama_orch.server._http import ORCH
from llama_orch.server.app import create_app
from tests.conftest import fast_config, free_port, read_stream
from tests.server.test_app import submit

GIB = 2**30


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[str, Orchestrator, FakeInventory]]:
    """One pool of two mock replicas on GPUs 0 and 1 of a fake inventory (2 and 10 GiB free)."""
    inventory = FakeInventory(
        [
            GpuDevice(0, "GPU-0", "fake 24G", 24 * GIB, 2 * GIB, 90),
            GpuDevice(1, "GPU-1", "fake 12G", 12 * GIB, 10 * GIB, 5),
        ]
    )
    config = fast_config(replicas=2, mock=MockSettings(tokens_per_s=2000, first_token_ms=1, slots=2))
    app = create_app(config)
    orch = app[ORCH]
    orch.inventory = inventory
    for index, replica in enumerate(orch.pools["default"].replicas):
        replica.devices = frozenset({index})
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", orch, inventory
    await runner.cleanup()


async def started_on(http: aiohttp.ClientSession, base: str, **body: Any) -> tuple[str, list[Any]]:
    task = await submit(http, base, max_tokens=2, **body)
    events = await read_stream(http, base, task["task_id"])
    assert events[-1].event == "end"
    return next(e.data["replica"] for e in events if e.event == "started"), events


async def test_most_free_vram_wins_and_follows_the_readings(
    cluster: tuple[str, Orchestrator, FakeInventory], http: aiohttp.ClientSession
) -> None:
    base, orch, inventory = cluster
    assert (await started_on(http, base))[0] == "default/r1"
    inventory.set_free(0, 20 * GIB)
    await orch.refresh_gpus()
    assert (await started_on(http, base))[0] == "default/r0"
    async with http.get(f"{base}/v1/replicasets") as resp:
        replicas = (await resp.json())["replicasets"][0]["replicas"]
    assert [(r["id"], r["devices"], r["vram_free_bytes"], r["vram_total_bytes"]) for r in replicas] == [
        ("default/r0", [0], 20 * GIB, 24 * GIB),
        ("default/r1", [1], 10 * GIB, 12 * GIB),
    ]
    assert [r["gpu_utilization_pct"] for r in replicas] == [90, 5]
    assert all(r["host"] is None and r["state"] == "ready" for r in replicas)


async def test_unhealthy_replicas_are_skipped_and_sessions_fail_over(
    cluster: tuple[str, Orchestrator, FakeInventory], http: aiohttp.ClientSession
) -> None:
    base, orch, _ = cluster
    pool = orch.pools["default"]
    first, _ = await started_on(http, base, session_id="s1")
    again, events = await started_on(http, base, session_id="s1")
    assert again == first  # affinity, even though the other replica has more VRAM free for the next one
    assert any(e.event == "metrics" and e.data.get("kv_warmth") is True for e in events)
    sick = next(r for r in pool.replicas if r.replica_id == first)
    pool.set_ready(sick, False)
    async with http.get(f"{base}/v1/replicasets") as resp:
        states = {r["id"]: r["state"] for r in (await resp.json())["replicasets"][0]["replicas"]}
    assert states[first] == "unready"
    moved, events = await started_on(http, base, session_id="s1")
    assert moved != first
    kv = [e.data["kv_warmth"] for e in events if e.event == "metrics" and "kv_warmth" in e.data]
    assert kv and not any(kv)
    async with http.get(f"{base}/v1/sessions/s1") as resp:
        assert (await resp.json())["replica"] == moved
    # No Ready replica: tasks wait in the queue, and start once one comes back.
    other = next(r for r in pool.replicas if r.replica_id == moved)
    pool.set_ready(other, False)
    task = await submit(http, base, max_tokens=2)
    assert len(pool.queue) == 1
    pool.set_ready(sick, True)
    events = await read_stream(http, base, task["task_id"])
    assert next(e.data["replica"] for e in events if e.event == "started") == first
