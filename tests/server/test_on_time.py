"""SSE ``metrics`` frames carry ``on_time_probability`` for tasks with a deadline (OC-CLI-2703)."""

from __future__ import annotations

import aiohttp

from llama_orch.engines.mock import MockSettings
from tests.conftest import Serve, fast_config, read_stream


async def _first_metrics(
    http: aiohttp.ClientSession, base: str, *, may_miss: bool = False, **body: object
) -> dict[str, object]:
    async with http.post(f"{base}/v1/tasks", json={"prompt": "p", "max_tokens": 4, **body}) as resp:
        assert resp.status == 202, await resp.text()
        task_id = (await resp.json())["task_id"]
    events = await read_stream(http, base, task_id)
    frame: dict[str, object] = next(e.data for e in events if e.event == "metrics")
    last = events[-1]
    # A deadline the task missed before it started ends it with DEADLINE_UNMET (a loaded machine).
    assert last.event == "end" or (may_miss and last.event == "error" and last.data["code"] == "DEADLINE_UNMET"), last
    return frame


async def test_on_time_probability_with_a_deadline_only(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=2000, first_token_ms=1, slots=1)))
    assert "on_time_probability" not in await _first_metrics(http, base)
    # before enough starts were seen, the prediction is taken at its word
    assert (await _first_metrics(http, base, deadline_ms=60_000))["on_time_probability"] == 1.0
    for _ in range(10):  # starts that come about when predicted
        await _first_metrics(http, base)
    frame = await _first_metrics(http, base, deadline_ms=60_000)
    assert frame["on_time_probability"] == 1.0 and frame["queue_depth"] == 1  # itself
    # a deadline far below any start seen is (almost) never met
    tight = await _first_metrics(http, base, may_miss=True, deadline_ms=1)
    probability = tight["on_time_probability"]
    assert isinstance(probability, float) and 0.0 <= probability <= 1.0
