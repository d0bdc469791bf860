"""Fixtures for the engine adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.engines._fake import FakeServer, Handler, StartFake, launch


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
