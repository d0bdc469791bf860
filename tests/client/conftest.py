"""Fixtures for the SDK tests: a thread-hosted orchestratord for the blocking client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from llama_orch.server.config import OrchestratorConfig
from tests.client._server import threaded_server

LiveServer = Callable[..., str]


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    """Start orchestratord apps in background threads (real sockets); returns their base URLs."""
    with ExitStack() as stack:

        def _start(config: OrchestratorConfig | None = None) -> str:
            return stack.enter_context(threaded_server(config))

        yield _start
