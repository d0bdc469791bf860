"""orchestratord over real HTTP on loopback: admission, errors, streaming, cancel, sessions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from llama_orch.engines.mock import MockFaults, MockSettings
from llama_orch.server.config import OrchestratorConfig, PoolConfig
from llama_orch_api import API_VERSION
from tests.conftest import Serve, fast_config, parse_sse, read_stream

SLOW = MockSettings(tokens_per_s=20, first_token_ms=1, slots=1)


async def submit(http: aiohttp.ClientSession, base: str, **body: Any) -> dict[str, Any]:
    body.setdefault("prompt", "hello")
    async with http.post(f"{base}/v1/tasks", json=body) as resp:
        assert resp.status == 202, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def error_of(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = await resp.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["retriable"], bool)
    return body


# -- the good path --------------------------------------------------------------------------------


async def test_good_task_end_to_end(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    admitted = await submit(http, base, prompt="write a test", max_tokens=12, seed=7, session_id="sess-1")
    assert admitted["queue_position"] == 0
    assert admitted["predicted_start_ms"] >= 0
    assert admitted["backoff_ms"] == 0
    assert admitted["stream_url"] == f"/v1/tasks/{admitted['task_id']}/stream"
    events = await read_stream(http, base, admitted["task_id"])
    names = [e.event for e in events]
    assert names.index("started") < names.index("token")
    assert names[-1] == "end" and names.count("end") == 1 and "error" not in names
    assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    tokens = [e.data for e in events if e.event == "token"]
    assert [t["i"] for t in tokens] == list(range(12))
    assert events[-1].data["tokens_out"] == 12
    assert events[-1].data["decode_time_ms"] >= 0
    started = next(e.data for e in events if e.event == "started")
    assert started["task_id"] == admitted["task_id"] and started["pool"] == "default"
    assert any(e.event == "metrics" and "queue_depth" in e.data for e in events)

    async with http.get(f"{base}/v1/sessions/sess-1") as resp:
        assert resp.status == 200
        session = await resp.json()
    assert session["turns"] == 1 and session["kv_warmth"] is True
    assert 0 < session["ttl_ms_remaining"] <= 600_000
    assert session["tokens_used"] == 12


async def test_same_seed_same_tokens_across_runs_and_replicas(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(replicas=2))
    texts = []
    for _ in range(3):
        admitted = await submit(http, base, prompt="determinism", max_tokens=20, seed=42, determinism="strict")
        events = await read_stream(http, base, admitted["task_id"])
        texts.append("".join(e.data["t"] for e in events if e.event == "token"))
    replicas = set()
    # Two at once occupy both replicas.
    first, second = await asyncio.gather(
        *(submit(http, base, prompt="determinism", max_tokens=20, seed=42) for _ in range(2))
    )
    for admitted in (first, second):
        events = await read_stream(http, base, admitted["task_id"])
        replicas.add(next(e.data["replica"] for e in events if e.event == "started"))
        texts.append("".join(e.data["t"] for e in events if e.event == "token"))
    assert len(set(texts)) == 1
    assert len(replicas) == 2
    other = await submit(http, base, prompt="determinism", max_tokens=20, seed=43)
    events = await read_stream(http, base, other["task_id"])
    assert "".join(e.data["t"] for e in events if e.event == "token") != texts[0]


async def test_capabilities_describe_pools(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(max_tokens=64, queue={"capacity": 9, "policy": "drop-lru"}))
    async with http.get(f"{base}/v1/capabilities") as resp:
        assert resp.status == 200
        caps = await resp.json()
    assert caps["api_version"] == API_VERSION
    (pool,) = caps["pools"]
    assert pool["id"] == "default" and pool["engine"] == "mock"
    assert pool["max_tokens"] == 64 and pool["slots"] == 2
    assert pool["queue_capacity"] == 9 and pool["queue_policy"] == "drop-lru"
    assert "strict" in pool["determinism"]


# -- typed errors ---------------------------------------------------------------------------------


def _two_pools() -> OrchestratorConfig:
    return OrchestratorConfig(
        server={"heartbeat_s": 0.2},
        pools=[
            PoolConfig(id="small", model_ref="mock:small", max_tokens=32, ctx_max=256, mock=SLOW),
            PoolConfig(id="loose", model_ref="mock:loose", determinism=["best_effort"], workloads=["completion"]),
        ],
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": "x", "engine": "vllm"}, 400, "UNKNOWN_ENGINE"),
        ({"prompt": "x", "model_ref": "hf:nope/nope"}, 400, "UNKNOWN_MODEL"),
        ({"prompt": "x", "pool": "nowhere"}, 400, "UNKNOWN_POOL"),
        ({"prompt": "x", "pool": "small", "ctx": 100_000}, 400, "CTX_EXCEEDED"),
        ({"prompt": "x" * 2000, "pool": "small", "max_tokens": 8}, 400, "CTX_EXCEEDED"),
        ({"prompt": "x", "pool": "small", "max_tokens": 33}, 400, "MAX_TOKENS_EXCEEDED"),
        ({"prompt": "x", "pool": "loose", "determinism": "strict"}, 400, "DETERMINISM_UNSUPPORTED"),
        ({"prompt": "x", "pool": "loose", "workload": "embedding"}, 400, "WORKLOAD_UNSUPPORTED"),
        ({"prompt": "x", "max_tokens": 0}, 400, "INVALID_PARAMS"),
        ({"prompt": "x", "max_tokens": "many"}, 400, "INVALID_PARAMS"),
        ({"prompt": 5}, 400, "INVALID_PARAMS"),
        ({"prompt": "x", "priority": "urgent"}, 400, "INVALID_PARAMS"),
        ({"prompt": "x", "surprise": True}, 400, "INVALID_PARAMS"),
        ({"prompt": "x", "inputs": ["y"]}, 400, "INVALID_PARAMS"),
        ({}, 400, "INVALID_PARAMS"),
        ({"prompt": "x", "task_id": "has spaces"}, 400, "INVALID_PARAMS"),
        ({"prompt": "x", "seed": -1}, 400, "INVALID_PARAMS"),
    ],
)
async def test_admission_errors(
    serve: Serve, http: aiohttp.ClientSession, body: dict[str, Any], status: int, code: str
) -> None:
    base = await serve(_two_pools())
    async with http.post(f"{base}/v1/tasks", json=body) as resp:
        await error_of(resp, status, code)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"just a string"', b"", b"\xff\xfe\x00", b'{"prompt": "x", "prompt": 3}'],
)
async def test_malformed_bodies_are_400(serve: Serve, http: aiohttp.ClientSession, raw: bytes) -> None:
    base = await serve(None)
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{base}/v1/tasks", data=raw, headers=headers) as resp:
        body = await error_of(resp, 400, "INVALID_PARAMS")
    assert body["details"]["errors"]


async def test_validation_errors_do_not_echo_input(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "sk-SECRET-123", "max_tokens": -5}) as resp:
        await error_of(resp, 400, "INVALID_PARAMS")
        assert "sk-SECRET-123" not in await resp.text()


async def test_huge_body_is_413(serve: Serve, http: aiohttp.ClientSession) -> None:
    config = fast_config()
    config.server.max_body_bytes = 4096
    base = await serve(config)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x" * 10_000}) as resp:
        await error_of(resp, 413, "PAYLOAD_TOO_LARGE")

    async def chunked() -> Any:
        for _ in range(10):
            yield b"x" * 1000

    async with http.post(f"{base}/v1/tasks", data=chunked()) as resp:  # no Content-Length
        await error_of(resp, 413, "PAYLOAD_TOO_LARGE")


async def test_duplicate_task_id_is_409(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    await submit(http, base, task_id="t-1", max_tokens=1)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "again", "task_id": "t-1"}) as resp:
        await error_of(resp, 409, "TASK_EXISTS")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/tasks/nope/stream", 404, "NOT_FOUND"),
        ("POST", "/v1/tasks/nope/cancel", 404, "NOT_FOUND"),
        ("GET", "/v1/sessions/nope", 404, "NOT_FOUND"),
        ("DELETE", "/v1/sessions/nope", 404, "NOT_FOUND"),
        ("GET", "/v2/anything", 404, "NOT_FOUND"),
        ("PUT", "/v1/tasks", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/v1/tasks", 405, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_unknown_things(
    serve: Serve, http: aiohttp.ClientSession, method: str, path: str, status: int, code: str
) -> None:
    base = await serve(None)
    async with http.request(method, f"{base}{path}") as resp:
        await error_of(resp, status, code)


async def test_bad_last_event_id_is_400(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    admitted = await submit(http, base, max_tokens=1)
    async with http.get(f"{base}{admitted['stream_url']}", headers={"Last-Event-ID": "abc"}) as resp:
        await error_of(resp, 400, "INVALID_PARAMS")


# -- backpressure ---------------------------------------------------------------------------------


async def test_full_queue_answers_429_with_headers(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW, queue={"capacity": 2}))
    for _ in range(3):  # one runs, two queue
        await submit(http, base, max_tokens=50)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "one too many"}) as resp:
        body = await error_of(resp, 429, "ADMISSION_REJECT")
        retry_after = int(resp.headers["Retry-After"])
        backoff = int(resp.headers["X-Backoff-Ms"])
    assert retry_after >= 1 and backoff >= 1
    assert body["retriable"] is True
    assert body["retry_after_ms"] == backoff
    assert body["policy_label"] == "queue-full:reject"
    assert body["engine"] == "mock"


async def test_drop_lru_evicts_oldest_batch_and_ends_its_stream(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW, queue={"capacity": 2, "policy": "drop-lru"}))
    await submit(http, base, max_tokens=50)  # occupies the only slot
    oldest = await submit(http, base, max_tokens=5, priority="batch")
    newer = await submit(http, base, max_tokens=5, priority="batch")
    incoming = await submit(http, base, max_tokens=5, priority="interactive")
    assert incoming["queue_position"] == 0
    events = await read_stream(http, base, oldest["task_id"])
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "QUEUE_FULL_DROP_LRU"
    assert events[-1].data["retriable"] is True
    assert not [e for e in events if e.event in ("started", "token")]
    # The others are still queued: cancel them so the test ends quickly, and check they were not dropped.
    for task in (newer, incoming):
        async with http.post(f"{base}/v1/tasks/{task['task_id']}/cancel") as resp:
            assert resp.status == 204
        events = await read_stream(http, base, task["task_id"])
        assert events[-1].data["code"] == "CANCELLED"


async def test_drop_lru_never_evicts_interactive_for_batch(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW, queue={"capacity": 1, "policy": "drop-lru"}))
    await submit(http, base, max_tokens=50)
    await submit(http, base, max_tokens=5, priority="interactive")
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "priority": "batch"}) as resp:
        body = await error_of(resp, 429, "ADMISSION_REJECT")
    assert body["policy_label"] == "queue-full:drop-lru"


async def test_interactive_runs_before_batch(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=200, first_token_ms=1, slots=1)))
    # waited_ms counts from each task's own admission: a start is placed on the client's clock at
    # the middle of its submit's round trip plus waited_ms (off by at most half a round trip, while
    # one task of 6 tokens at 200 tok/s keeps the next 30 ms from the slot).
    admitted_at: dict[str, float] = {}

    async def timed(**body: Any) -> dict[str, Any]:
        before = time.monotonic()
        task = await submit(http, base, **body)
        admitted_at[task["task_id"]] = (before + time.monotonic()) / 2
        return task

    head = await timed(max_tokens=20)
    b1 = await timed(max_tokens=6, priority="batch")
    b2 = await timed(max_tokens=6, priority="batch")
    i1 = await timed(max_tokens=6, priority="interactive")
    assert (b1["queue_position"], b2["queue_position"], i1["queue_position"]) == (0, 1, 0)
    order = []
    for task in (head, b1, b2, i1):
        events = await read_stream(http, base, task["task_id"])
        started = next(e.data for e in events if e.event == "started")
        order.append((admitted_at[task["task_id"]] + started["waited_ms"] / 1000, task["task_id"]))
    assert [tid for _, tid in sorted(order)] == [head["task_id"], i1["task_id"], b1["task_id"], b2["task_id"]]


async def test_deadline_that_cannot_be_met_is_429_with_advice(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW))
    await submit(http, base, max_tokens=100)  # ~5 s of work on the only slot
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "deadline_ms": 50}) as resp:
        body = await error_of(resp, 429, "DEADLINE_UNMET")
        assert int(resp.headers["Retry-After"]) >= 1
        assert int(resp.headers["X-Backoff-Ms"]) == body["retry_after_ms"] > 0
    assert body["retriable"] is True and body["policy_label"] == "deadline-unmet"
    assert body["details"]["predicted_start_ms"] > 50


# -- cancel ---------------------------------------------------------------------------------------


async def test_cancel_queued_task_never_starts(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=SLOW))
    head = await submit(http, base, max_tokens=10)
    queued = await submit(http, base, max_tokens=5)
    async with http.post(f"{base}/v1/tasks/{queued['task_id']}/cancel") as resp:
        assert resp.status == 204
    await read_stream(http, base, head["task_id"])  # the slot frees afterwards
    events = await read_stream(http, base, queued["task_id"])
    assert [e.event for e in events] == ["metrics", "error"]
    assert events[-1].data["code"] == "CANCELLED"
    # Cancelling again is harmless.
    async with http.post(f"{base}/v1/tasks/{queued['task_id']}/cancel") as resp:
        assert resp.status == 204


async def test_cancel_mid_stream_stops_tokens(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=100, first_token_ms=1, slots=1)))
    admitted = await submit(http, base, max_tokens=500)
    seen = 0
    async with http.get(f"{base}{admitted['stream_url']}") as resp:
        async for line in resp.content:
            if line.startswith(b"event: token"):
                seen += 1
                if seen == 3:
                    break
    async with http.post(f"{base}/v1/tasks/{admitted['task_id']}/cancel") as resp:
        assert resp.status == 204
    after_cancel = await read_stream(http, base, admitted["task_id"])
    await asyncio.sleep(0.2)  # the engine would have produced ~20 more tokens by now
    later = await read_stream(http, base, admitted["task_id"])
    assert [(e.id, e.event) for e in later] == [(e.id, e.event) for e in after_cancel]
    assert later[-1].event == "error" and later[-1].data["code"] == "CANCELLED"
    assert 3 <= sum(e.event == "token" for e in later) < 500
    # The slot is free again: a new task runs to the end.
    nxt = await submit(http, base, max_tokens=3)
    assert (await read_stream(http, base, nxt["task_id"]))[-1].event == "end"


# -- streaming ------------------------------------------------------------------------------------


async def test_reconnect_with_last_event_id_resumes(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=200, first_token_ms=1, slots=1)))
    admitted = await submit(http, base, max_tokens=40, seed=1)
    first: list[bytes] = []
    async with http.get(f"{base}{admitted['stream_url']}") as resp:
        buf = b""
        async for chunk in resp.content.iter_any():
            buf += chunk
            if buf.count(b"\n\n") >= 6:
                break
        first = buf.split(b"\n\n")[:6]
    head = parse_sse(b"\n\n".join(first).decode() + "\n\n")
    last_id = head[-1].id
    assert last_id == "6"
    rest = await read_stream(http, base, admitted["task_id"], headers={"Last-Event-ID": last_id})
    assert rest[0].id == "7"
    full = await read_stream(http, base, admitted["task_id"])
    assert [(e.id, e.event, e.data) for e in head + rest] == [(e.id, e.event, e.data) for e in full]
    assert full[-1].event == "end"


async def test_late_subscriber_gets_everything(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    admitted = await submit(http, base, max_tokens=5)
    await asyncio.sleep(0.3)  # finished long before we subscribe
    events = await read_stream(http, base, admitted["task_id"])
    assert [e.event for e in events].count("token") == 5
    assert events[-1].event == "end"


async def test_heartbeat_while_queued(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=10, first_token_ms=1, slots=1)))
    await submit(http, base, max_tokens=10)  # ~1 s on the only slot
    queued = await submit(http, base, max_tokens=1)
    async with http.get(f"{base}{queued['stream_url']}") as resp:
        text = await resp.text()
    assert ": keep-alive" in text
    assert parse_sse(text)[-1].event == "end"


@pytest.mark.parametrize(
    ("faults", "code", "retriable"),
    [
        (MockFaults(trigger="[boom]", error_after_tokens=3), "ENGINE_ERROR", False),
        (MockFaults(trigger="[boom]", reset_after_tokens=3), "WORKER_RESET", True),
        (MockFaults(trigger="[boom]", hang_after_tokens=3), "DECODE_TIMEOUT", True),
    ],
)
async def test_engine_fault_mid_stream_gives_error_then_end_of_stream(
    serve: Serve, http: aiohttp.ClientSession, faults: MockFaults, code: str, retriable: bool
) -> None:
    mock = MockSettings(tokens_per_s=1000, first_token_ms=1, slots=1, faults=faults)
    base = await serve(fast_config(mock=mock, token_timeout_s=0.3))
    admitted = await submit(http, base, prompt="please [boom]", max_tokens=10)
    events = await read_stream(http, base, admitted["task_id"])  # returns only when the stream closes
    assert [e.event for e in events].count("token") == 3
    assert events[-1].event == "error"
    assert events[-1].data["code"] == code
    assert events[-1].data["retriable"] is retriable
    assert events[-1].data["engine"] == "mock"
    # The pool keeps serving: a prompt without the trigger succeeds on the same slot.
    ok = await submit(http, base, prompt="fine", max_tokens=4)
    assert (await read_stream(http, base, ok["task_id"]))[-1].event == "end"


async def test_relay_from_engine_over_http_matches_in_process(
    serve: Serve, http: aiohttp.ClientSession, mock_engine_server: Any
) -> None:
    engine_url = await mock_engine_server(MockSettings(tokens_per_s=2000, first_token_ms=1, slots=4))
    config = OrchestratorConfig(
        pools=[
            PoolConfig(id="remote", endpoint=engine_url, model_ref="mock:remote"),
            PoolConfig(id="local", mock=MockSettings(tokens_per_s=2000, first_token_ms=1)),
        ]
    )
    base = await serve(config)
    texts = []
    for pool in ("remote", "local"):
        admitted = await submit(http, base, pool=pool, prompt="same", max_tokens=30, seed=9)
        events = await read_stream(http, base, admitted["task_id"])
        assert events[-1].event == "end", events[-1]
        texts.append([e.data["t"] for e in events if e.event == "token"])
    assert texts[0] == texts[1] and len(texts[0]) == 30


async def test_engine_unreachable_gives_retriable_error_event(serve: Serve, http: aiohttp.ClientSession) -> None:
    from tests.conftest import free_port

    base = await serve(OrchestratorConfig(pools=[PoolConfig(id="gone", endpoint=f"http://127.0.0.1:{free_port()}")]))
    admitted = await submit(http, base, max_tokens=3)
    events = await read_stream(http, base, admitted["task_id"])
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "POOL_UNAVAILABLE"
    assert events[-1].data["retriable"] is True


# -- sessions -------------------------------------------------------------------------------------


async def test_session_delete(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    admitted = await submit(http, base, session_id="s-del", max_tokens=2)
    await read_stream(http, base, admitted["task_id"])
    async with http.delete(f"{base}/v1/sessions/s-del") as resp:
        assert resp.status == 204
    async with http.get(f"{base}/v1/sessions/s-del") as resp:
        await error_of(resp, 404, "NOT_FOUND")


async def test_session_expires_after_ttl(serve: Serve, http: aiohttp.ClientSession) -> None:
    config = fast_config()
    config.sessions.ttl_s = 0.2
    base = await serve(config)
    admitted = await submit(http, base, session_id="s-ttl", max_tokens=1)
    await read_stream(http, base, admitted["task_id"])
    async with http.get(f"{base}/v1/sessions/s-ttl") as resp:
        assert resp.status == 200
    await asyncio.sleep(0.3)
    async with http.get(f"{base}/v1/sessions/s-ttl") as resp:
        await error_of(resp, 404, "NOT_FOUND")


# -- correlation ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tasks", {"prompt": "x", "max_tokens": 1}),
        ("POST", "/v1/tasks", {"prompt": 1}),
        ("GET", "/v1/tasks/{task}/stream", None),
        ("POST", "/v1/tasks/{task}/cancel", None),
        ("GET", "/v1/sessions/corr", None),
        ("DELETE", "/v1/sessions/missing", None),
        ("GET", "/v1/capabilities", None),
        ("GET", "/v1/nothing-here", None),
        ("PATCH", "/v1/capabilities", None),
    ],
)
async def test_correlation_id_echoed_on_every_route(
    serve: Serve, http: aiohttp.ClientSession, method: str, path: str, body: Any
) -> None:
    base = await serve(None)
    admitted = await submit(http, base, session_id="corr", max_tokens=1)
    url = base + path.format(task=admitted["task_id"])
    async with http.request(method, url, json=body, headers={"X-Correlation-Id": "abc-123"}) as resp:
        assert resp.headers["X-Correlation-Id"] == "abc-123"
        await resp.read()
    async with http.request(method, url, json=body) as resp:
        generated = resp.headers["X-Correlation-Id"]
        assert len(generated) >= 16
        if resp.status >= 400:
            assert (await resp.json())["correlation_id"] == generated


async def test_insane_correlation_id_is_replaced(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    async with http.get(f"{base}/v1/capabilities", headers={"X-Correlation-Id": "bad id\twith tab"}) as resp:
        assert resp.headers["X-Correlation-Id"] != "bad id\twith tab"


async def test_shutdown_ends_open_streams_with_retriable_error(http: aiohttp.ClientSession) -> None:
    from aiohttp import web

    from llama_orch.server.app import create_app
    from tests.conftest import free_port

    runner = web.AppRunner(create_app(fast_config(mock=SLOW)), handle_signals=False, shutdown_timeout=30)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    running = await submit(http, base, max_tokens=500)
    queued = await submit(http, base, max_tokens=5)
    readers = [asyncio.create_task(read_stream(http, base, t["task_id"])) for t in (running, queued)]
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await runner.cleanup()
    assert loop.time() - began < 10, "shutdown waited for open streams instead of ending them"
    for reader in readers:
        events = await reader
        assert events[-1].event == "error"
        assert events[-1].data["code"] == "POOL_UNAVAILABLE"
        assert events[-1].data["retriable"] is True
