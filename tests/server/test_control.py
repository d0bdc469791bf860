"""Control plane over real HTTP: budgets, capabilities, replica sets, pool health/drain/reload."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from llama_orch.engines.mock import MockSettings
from llama_orch.server.config import OrchestratorConfig, PoolConfig
from llama_orch_api import BudgetSpec
from tests.conftest import Serve, fast_config, read_stream
from tests.server.test_app import error_of, submit

ROOT = Path(__file__).resolve().parents[2]
SLOW = MockSettings(tokens_per_s=20, first_token_ms=1, slots=1)


# -- budgets --------------------------------------------------------------------------------------


async def test_concurrent_submissions_never_overspend_a_session_budget(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    config = fast_config(mock=MockSettings(tokens_per_s=5000, first_token_ms=1, slots=4), queue={"capacity": 256})
    base = await serve(config)
    body = {"prompt": "go", "max_tokens": 4, "session_id": "budgeted", "budget": {"tokens": 200}}

    async def one(i: int) -> tuple[int, dict[str, Any]]:
        async with http.post(f"{base}/v1/tasks", json={**body, "task_id": f"b{i}"}) as resp:
            return resp.status, await resp.json()

    results = await asyncio.gather(*(one(i) for i in range(200)))
    accepted = [r for s, r in results if s == 202]
    refused = [r for s, r in results if s != 202]
    assert len(accepted) == 50
    assert {s for s, _ in results} == {202, 402}
    assert all(r["code"] == "BUDGET_EXCEEDED" and r["details"]["dimension"] == "tokens" for r in refused)
    streams = await asyncio.gather(*(read_stream(http, base, r["task_id"]) for r in accepted))
    produced = sum(sum(e.event == "token" for e in events) for events in streams)
    assert all(events[-1].event == "end" for events in streams)
    async with http.get(f"{base}/v1/sessions/budgeted") as resp:
        info = await resp.json()
        assert resp.headers["X-Budget-Tokens-Remaining"] == "0"
    budget = info["budget"]
    assert budget["tokens_used"] == produced == 200
    assert budget["tokens_used"] <= budget["tokens_limit"]
    assert budget["tokens_reserved"] == 0


async def test_budget_headers_and_metrics_frames(serve: Serve, http: aiohttp.ClientSession) -> None:
    config = fast_config(price_per_token=0.5)
    base = await serve(config)
    async with http.post(
        f"{base}/v1/tasks",
        json={"prompt": "x", "max_tokens": 10, "session_id": "s-h", "budget": {"tokens": 100, "cost": 20}},
    ) as resp:
        assert resp.status == 202
        admitted = await resp.json()
        # Reserved for the worst case: 10 tokens, 10 x 0.5 of cost.
        assert resp.headers["X-Budget-Tokens-Remaining"] == "90"
        assert resp.headers["X-Budget-Cost-Remaining"] == "15"
        assert "X-Budget-Wall-Ms-Remaining" not in resp.headers
    events = await read_stream(http, base, admitted["task_id"])
    metrics = [e.data for e in events if e.event == "metrics" and "budget_tokens_remaining" in e.data]
    assert metrics, "no metrics frame carried the budget"
    async with http.get(f"{base}/v1/sessions/s-h") as resp:
        budget = (await resp.json())["budget"]
    assert budget["tokens_used"] == 10
    assert budget["cost_used"] == pytest.approx(5.0)
    assert budget["cost_remaining"] == pytest.approx(15.0)
    # A task whose worst case costs more than what is left is refused before it is queued.
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 40, "session_id": "s-h"}) as resp:
        body = await error_of(resp, 402, "BUDGET_EXCEEDED")
    assert body["details"]["dimension"] == "cost"


async def test_wall_time_budget_ends_a_stream_with_a_typed_error(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=100, first_token_ms=1, slots=1)))
    admitted = await submit(http, base, max_tokens=1000, session_id="s-wall", budget={"wall_ms": 150})
    events = await read_stream(http, base, admitted["task_id"])
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "BUDGET_EXCEEDED"
    assert 0 < sum(e.event == "token" for e in events) < 1000
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "session_id": "s-wall"}) as resp:
        await error_of(resp, 402, "BUDGET_EXCEEDED")


async def test_default_budget_from_config_and_turn_limit(serve: Serve, http: aiohttp.ClientSession) -> None:
    config = fast_config()
    config.sessions.default_budget = BudgetSpec(tokens=5)
    config.sessions.max_turns = 2
    base = await serve(config)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 6, "session_id": "d"}) as resp:
        await error_of(resp, 402, "BUDGET_EXCEEDED")
    for _ in range(2):
        await submit(http, base, max_tokens=1, session_id="turns")
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 1, "session_id": "turns"}) as resp:
        body = await error_of(resp, 402, "BUDGET_EXCEEDED")
    assert body["details"]["dimension"] == "turns"


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x", "budget": {"tokens": 10}},  # a budget needs a session
        {"prompt": "x", "session_id": "s", "budget": {"tokens": 0}},
        {"prompt": "x", "session_id": "s", "budget": {"cost": -1}},
        {"prompt": "x", "session_id": "s", "budget": {"tokenz": 1}},
        {"prompt": "x", "sampler_profile_version": "llorch/unknown@9"},
    ],
)
async def test_bad_budget_and_profile_inputs(serve: Serve, http: aiohttp.ClientSession, body: dict[str, Any]) -> None:
    base = await serve(None)
    async with http.post(f"{base}/v1/tasks", json=body) as resp:
        await error_of(resp, 400, "INVALID_PARAMS")


# -- capabilities and replica sets ----------------------------------------------------------------


async def test_capabilities_api_version_equals_the_yaml(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(price_per_token=0.25))
    async with http.get(f"{base}/v1/capabilities") as resp:
        caps = await resp.json()
    for name in ("data.yaml", "control.yaml"):
        doc = yaml.safe_load((ROOT / "contracts" / "openapi" / name).read_text())
        assert caps["api_version"] == doc["info"]["version"]
    (pool,) = caps["pools"]
    assert pool["max_tokens_out"] == pool["max_tokens"]
    assert pool["concurrency"] == 2
    assert pool["price_per_token"] == 0.25
    assert pool["rate_limits"]["queue_capacity"] == pool["queue_capacity"]
    assert pool["features"]["cancel"] is True
    assert "strict" in pool["features"]["determinism"]
    names = {p["name"] for p in caps["sampler_profiles"]}
    assert "llorch/sampler@1" in names
    assert all(p["notes"] for p in caps["sampler_profiles"])


async def test_replicasets_reflect_load_while_tasks_run(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=50, first_token_ms=1, slots=2)))

    async def snapshot() -> dict[str, Any]:
        async with http.get(f"{base}/v1/replicasets") as resp:
            assert resp.status == 200
            (rs,) = (await resp.json())["replicasets"]
            return dict(rs)

    idle = await snapshot()
    assert (idle["load"], idle["slots_free"], idle["queue_depth"]) == (0.0, 2, 0)
    assert idle["slo"]["samples"] == 0
    tasks = [await submit(http, base, max_tokens=50) for _ in range(3)]
    busy = await snapshot()
    assert busy["load"] == 1.0
    assert busy["slots_free"] == 0
    assert busy["queue_depth"] == 1
    assert busy["replicas"][0]["slots_total"] == 2
    for task in tasks:
        async with http.post(f"{base}/v1/tasks/{task['task_id']}/cancel") as resp:
            assert resp.status == 204
    done = await submit(http, base, max_tokens=3)
    await read_stream(http, base, done["task_id"])
    after = await snapshot()
    assert after["slo"]["samples"] == 1
    assert after["slo"]["first_token_ms_p50"] is not None


# -- pools ----------------------------------------------------------------------------------------


async def test_pool_health_and_unknown_pool(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    async with http.get(f"{base}/v1/pools/default/health") as resp:
        health = await resp.json()
    assert (health["state"], health["ready"], health["live"]) == ("ready", True, True)
    assert health["replicas"][0]["slots_total"] == 2
    for method, path in (("GET", "health"), ("POST", "drain"), ("POST", "reload")):
        async with http.request(method, f"{base}/v1/pools/nope/{path}", json={"model_ref": "mock:x"}) as resp:
            await error_of(resp, 404, "NOT_FOUND")


async def test_drain_finishes_work_then_refuses(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=200, first_token_ms=1, slots=1)))
    running = await submit(http, base, max_tokens=20)
    queued = await submit(http, base, max_tokens=20)
    async with http.post(f"{base}/v1/pools/default/drain", json={"deadline_ms": 10_000}) as resp:
        assert resp.status == 200
        op = await resp.json()
    assert (op["operation"], op["outcome"], op["state"]) == ("drain", "completed", "drained")
    assert op["cancelled_tasks"] == 0
    for task in (running, queued):
        assert (await read_stream(http, base, task["task_id"]))[-1].event == "end"
    async with http.post(f"{base}/v1/tasks", json={"prompt": "late"}) as resp:
        body = await error_of(resp, 503, "POOL_DRAINING")
    assert body["retriable"] is True
    async with http.get(f"{base}/v1/pools/default/health") as resp:
        assert (await resp.json())["ready"] is False
    # A reload brings a drained pool back.
    async with http.post(f"{base}/v1/pools/default/reload", json={"model_ref": "mock:tiny"}) as resp:
        assert resp.status == 200
    await submit(http, base, max_tokens=1)


async def test_drain_deadline_cuts_remaining_work(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW))
    running = await submit(http, base, max_tokens=500)
    queued = await submit(http, base, max_tokens=500)
    async with http.post(f"{base}/v1/pools/default/drain", json={"deadline_ms": 100}) as resp:
        op = await resp.json()
    assert op["cancelled_tasks"] == 2
    for task in (running, queued):
        last = (await read_stream(http, base, task["task_id"]))[-1]
        assert last.event == "error"
        assert last.data["code"] == "POOL_DRAINING"
        assert last.data["retriable"] is True


async def test_drain_twice_is_a_conflict(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW))
    await submit(http, base, max_tokens=500)
    first = asyncio.create_task(http.post(f"{base}/v1/pools/default/drain", json={"deadline_ms": 300}))
    await asyncio.sleep(0.1)
    async with http.post(f"{base}/v1/pools/default/drain", json={"deadline_ms": 300}) as resp:
        await error_of(resp, 409, "CONFLICT")
    (await first).release()


async def test_reload_swaps_model_atomically(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=100, first_token_ms=1, slots=1)))
    old_task = await submit(http, base, max_tokens=30)
    async with http.post(f"{base}/v1/pools/default/reload", json={"model_ref": f"file:{model}"}) as resp:
        assert resp.status == 200
        op = await resp.json()
    assert op["outcome"] == "completed"
    assert op["previous_model_ref"] == "mock:tiny"
    assert op["model_ref"] == f"file:{model}"
    # The task running on the old replica finishes there; new work goes to the new model.
    old_events = await read_stream(http, base, old_task["task_id"])
    assert old_events[-1].event == "end"
    async with http.get(f"{base}/v1/capabilities") as resp:
        assert (await resp.json())["pools"][0]["model_ref"] == f"file:{model}"
    new_task = await submit(http, base, max_tokens=2, model_ref=f"file:{model}")
    new_events = await read_stream(http, base, new_task["task_id"])
    started = next(e.data for e in new_events if e.event == "started")
    assert started["replica"] != next(e.data for e in old_events if e.event == "started")["replica"]
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "model_ref": "mock:tiny"}) as resp:
        await error_of(resp, 400, "UNKNOWN_MODEL")


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
async def test_failed_reload_rolls_back_and_stays_ready(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path, kind: str
) -> None:
    model = tmp_path / "bad.gguf"
    if kind == "corrupt":
        model.write_bytes(b"NOPE" + b"\0" * 64)
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=200, first_token_ms=1, slots=1)))
    running = await submit(http, base, max_tokens=20)
    async with http.post(f"{base}/v1/pools/default/reload", json={"model_ref": f"file:{model}"}) as resp:
        body = await error_of(resp, 422, "RELOAD_FAILED")
    assert body["details"] == {"rolled_back": True, "model_ref": "mock:tiny"}
    async with http.get(f"{base}/v1/pools/default/health") as resp:
        health = await resp.json()
    assert (health["state"], health["ready"], health["model_ref"]) == ("ready", True, "mock:tiny")
    assert "reload" in health["last_error"]
    assert (await read_stream(http, base, running["task_id"]))[-1].event == "end"
    after = await submit(http, base, max_tokens=2)
    assert (await read_stream(http, base, after["task_id"]))[-1].event == "end"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("drain", {"deadline_ms": -1}),
        ("drain", {"deadline": 5}),
        ("reload", {}),
        ("reload", {"model_ref": ""}),
        ("reload", {"model_ref": 7}),
    ],
)
async def test_bad_pool_operation_bodies(
    serve: Serve, http: aiohttp.ClientSession, path: str, body: dict[str, Any]
) -> None:
    base = await serve(None)
    async with http.post(f"{base}/v1/pools/default/{path}", json=body) as resp:
        await error_of(resp, 400, "INVALID_PARAMS")


async def test_drain_of_one_pool_leaves_others_serving(serve: Serve, http: aiohttp.ClientSession) -> None:
    config = OrchestratorConfig(
        pools=[
            PoolConfig(id="a", model_ref="mock:shared", mock=MockSettings(tokens_per_s=2000, first_token_ms=1)),
            PoolConfig(id="b", model_ref="mock:shared", mock=MockSettings(tokens_per_s=2000, first_token_ms=1)),
        ]
    )
    base = await serve(config)
    async with http.post(f"{base}/v1/pools/a/drain", json={"deadline_ms": 1000}) as resp:
        assert resp.status == 200
    admitted = await submit(http, base, max_tokens=2, model_ref="mock:shared")
    assert admitted["pool"] == "b"
