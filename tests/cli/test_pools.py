"""``pools drain`` shows live progress (polled pool health) while the synchronous drain waits."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console

from llama_orch.cli._pools import _with_progress
from llama_orch.cli._state import State
from llama_orch.client import Client
from llama_orch.engines.mock import MockSettings
from tests.conftest import fast_config


def test_drain_progress_shows_the_pool_while_it_waits(live_server: Callable[..., str]) -> None:
    base = live_server(fast_config(mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=1)))
    with Client(base) as client:
        client.create_task(prompt="slow", max_tokens=100)
        client.create_task(prompt="queued", max_tokens=100)
    state = State(base_url=base, token=None, json=False, timeout=30, correlation_id=None)
    screen = io.StringIO()
    state._err = Console(file=screen, force_terminal=True, width=120)
    polls = 0
    real_health = Client.pool_health

    def counting_health(self: Client, *args: object, **kwargs: object) -> object:
        nonlocal polls
        polls += 1
        return real_health(self, *args, **kwargs)  # type: ignore[arg-type]

    try:
        Client.pool_health = counting_health  # type: ignore[assignment, method-assign]
        result = _with_progress(
            state, "default", "draining", lambda: state.client().drain_pool("default", deadline_ms=1200)
        )
    finally:
        Client.pool_health = real_health  # type: ignore[method-assign]
        state.close()
    assert result.state == "drained" and result.cancelled_tasks == 2
    assert polls >= 1
    assert "draining default: draining, 1 running, 1 queued" in screen.getvalue()


def test_without_a_terminal_there_is_no_spinner(live_server: Callable[..., str]) -> None:
    base = live_server(fast_config())
    state = State(base_url=base, token=None, json=False, timeout=30, correlation_id=None)
    screen = io.StringIO()
    state._err = Console(file=screen, force_terminal=False)
    try:
        result = _with_progress(
            state, "default", "draining", lambda: state.client().drain_pool("default", deadline_ms=0)
        )
    finally:
        state.close()
    assert result.state == "drained" and screen.getvalue() == ""
