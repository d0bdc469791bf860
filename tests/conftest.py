"""Shared fixtures: real servers on loopback (orchestratord, the mock engine over HTTP) and SSE helpers."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llama_orch.engines.mock import MockSettings
from llama_orch.engines.mock_server import make_app as make_mock_app
from llama_orch.server.app import create_app
from llama_orch.server.config import OrchestratorConfig, PoolConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast_config(**pool: Any) -> OrchestratorConfig:
    """One mock pool, fast enough for tests; keyword arguments override PoolConfig fields."""
    pool.setdefault("id", "default")
    pool.setdefault("mock", MockSettings(tokens_per_s=2000, first_token_ms=1, slots=2))
    return OrchestratorConfig(server={"heartbeat_s": 0.2, "metrics_interval_s": 0.05}, pools=[PoolConfig(**pool)])


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: Any


def parse_sse(text: str) -> list[SseEvent]:
    """Minimal SSE parser for tests (the SDK has the robust one)."""
    events: list[SseEvent] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        ev_id, name, data = None, "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                ev_id = value
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append(SseEvent(ev_id, name, json.loads("\n".join(data))))
    return events


async def read_stream(
    http: aiohttp.ClientSession, base: str, task_id: str, headers: dict[str, str] | None = None
) -> list[SseEvent]:
    async with http.get(f"{base}/v1/tasks/{task_id}/stream", headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return parse_sse(await resp.text())


Serve = Callable[[OrchestratorConfig | None], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start orchestratord apps on 127.0.0.1 (real sockets); returns their base URLs."""
    runners: list[web.AppRunner] = []

    async def _serve(config: OrchestratorConfig | None = None) -> str:
        runner = web.AppRunner(create_app(config or fast_config()), handle_signals=False)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield _serve
    for runner in reversed(runners):
        await runner.cleanup()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port for the ``async with`` block; yields its base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def mock_engine_server() -> AsyncIterator[Callable[[MockSettings], Awaitable[str]]]:
    """Start the mock engine's HTTP server (llama.cpp wire format) on 127.0.0.1."""
    runners: list[web.AppRunner] = []

    async def _start(settings: MockSettings) -> str:
        runner = web.AppRunner(make_mock_app(settings), handle_signals=False)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield _start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
