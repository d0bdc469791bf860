"""KV reuse across a session's turns (``kv_hint``): the next turn goes to the replica and engine slot
of the previous one, with the engine's prompt cache on, reported as ``kv_warmth`` in the metrics
frames and as ``cached_tokens`` in the end event; ``kv_hint: {mode: cold}`` turns both off; a warm
slot that is busy is not waited for: the turn runs cold in another slot and says so.

Served by orchestratord's app on loopback with the in-process mock engine, which keeps a prompt
cache per slot as llama.cpp does (``tests/engines/test_llamacpp_real.py`` checks ``id_slot`` and
``cache_prompt`` on a real llama-server; ``benchmarks/kv_reuse.py`` measures the TTFT it saves)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from llama_orch.engines.mock import MockSettings
from llama_orch.scheduler import Orchestrator
from llama_orch.server._http import ORCH
from llama_orch.server.app import create_app
from tests.conftest import fast_config, read_stream, serving
from tests.server.test_app import submit

FIRST = "one two three four five six seven eight"
SECOND = FIRST + " nine ten"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Orchestrator]]:
    config = fast_config(mock=MockSettings(tokens_per_s=2000, first_token_ms=1, slots=2))
    app = create_app(config)
    async with serving(app) as base:
        yield base, app[ORCH]


async def turn(http: aiohttp.ClientSession, base: str, **body: Any) -> dict[str, Any]:
    task = await submit(http, base, max_tokens=2, **body)
    events = await read_stream(http, base, task["task_id"])
    assert events[-1].event == "end", events[-1]
    warmth = [e.data.get("kv_warmth", False) for e in events if e.event == "metrics"]
    return {"warm": warmth[-1], "cached": events[-1].data["cached_tokens"], "prompt": events[-1].data["prompt_tokens"]}


async def test_a_sessions_next_turn_reuses_its_slot(
    server: tuple[str, Orchestrator], http: aiohttp.ClientSession
) -> None:
    base, orch = server
    first = await turn(http, base, session_id="s1", prompt=FIRST)
    assert first == {"warm": False, "cached": 0, "prompt": 8}
    second = await turn(http, base, session_id="s1", prompt=SECOND)
    assert second == {"warm": True, "cached": 8, "prompt": 10}
    session = orch.sessions.get("s1", time.monotonic())
    assert session is not None and session.slot == 0 and session.replica == "default/r0"
    # A cold hint: no warm placement, no prompt cache.
    cold = await turn(http, base, session_id="s1", prompt=SECOND, kv_hint={"mode": "cold"})
    assert cold == {"warm": False, "cached": 0, "prompt": 10}


async def test_a_busy_warm_slot_is_not_waited_for(
    server: tuple[str, Orchestrator], http: aiohttp.ClientSession
) -> None:
    base, orch = server
    await turn(http, base, session_id="s1", prompt=FIRST)
    session = orch.sessions.get("s1", time.monotonic())
    assert session is not None and session.slot == 0
    # A long task of another session holds s1's slot (the lowest free one).
    (replica,) = orch.pools["default"].replicas
    assert not replica.slot_of
    long = await submit(http, base, session_id="s2", prompt="hold", max_tokens=2000)
    try:
        for _ in range(200):
            if replica.slot_of:
                break
            await asyncio.sleep(0.01)
        assert replica.slot_of == {long["task_id"]: 0}
        busy = await turn(http, base, session_id="s1", prompt=SECOND)
        assert busy == {"warm": False, "cached": 0, "prompt": 10}  # slot 1 holds nothing of s1
    finally:
        async with http.post(f"{base}/v1/tasks/{long['task_id']}/cancel") as resp:
            assert resp.status < 300, await resp.text()
