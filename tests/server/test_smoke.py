from __future__ import annotations

import aiohttp

from tests.conftest import Serve, read_stream


async def test_task_streams_to_end(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "hi", "max_tokens": 7, "seed": 3}) as resp:
        assert resp.status == 202
        admitted = await resp.json()
    events = await read_stream(http, base, admitted["task_id"])
    names = [e.event for e in events]
    assert names[-1] == "end"
    tokens = [e.data for e in events if e.event == "token"]
    assert [t["i"] for t in tokens] == list(range(7))
    assert events[-1].data["tokens_out"] == 7
