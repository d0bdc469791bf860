"""Fixtures for the engine adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from aiohttp import web

from llama_orch.engines import Engine
from tests.engines._fake import FakeServer, Handler, StartFake, launch

E = TypeVar("E", bound=Engine)


@pytest.fixture
async def fake_server() -> AsyncIterator[StartFake]:
    """Start fake engine servers on 127.0.0.1 from a route table; all are stopped after the test."""
    runners: list[web.AppRunner] = []

    async def _start(routes: dict[str, Handler]) -> FakeServer:
        fake, runner = await launch(routes)
        runners.append(runner)
        return fake

    yield _start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def started() -> AsyncIterator[Callable[[E], Awaitable[E]]]:
    """Start an adapter (``await started(TGIEngine(url))``); every one started is closed after the test."""
    engines: list[Engine] = []

    async def _start(engine: E) -> E:
        await engine.start()
        engines.append(engine)
        return engine

    yield _start
    for engine in reversed(engines):
        await engine.aclose()
