"""One trace from admission to the end of the stream, under the client's traceparent."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from llama_orch.server._security import SECURITY
from llama_orch.server.app import create_app
from llama_orch.telemetry import CORRELATION_ATTRIBUTE, Tracing
from tests.conftest import fast_config, parse_sse

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


async def test_one_trace_from_admission_to_stream_end(http: aiohttp.ClientSession) -> None:
    app = create_app(fast_config())
    tracing, exporter = Tracing.in_memory()
    app[SECURITY].tracing = tracing
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01", "X-Correlation-Id": "cid-trace-1"}
    try:
        async with http.post(f"{base}/v1/tasks", json={"prompt": "hi", "max_tokens": 4}, headers=headers) as resp:
            assert resp.status == 202
            task_id = (await resp.json())["task_id"]
        async with http.get(f"{base}/v1/tasks/{task_id}/stream", headers=headers) as resp:
            events = parse_sse(await resp.text())
        assert events[-1].event == "end"
        async with asyncio.timeout(10):
            while "engine_stream" not in {s.name for s in exporter.get_finished_spans()}:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # the task record (which lays out the task's spans) is written async
    finally:
        await runner.cleanup()
    spans = exporter.get_finished_spans()
    by_name = {s.name: s for s in spans}
    assert {"POST /v1/tasks", "queue_wait", "placement", "engine_stream", "GET /v1/tasks/{task_id}/stream"} <= set(
        by_name
    )
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    admission = by_name["POST /v1/tasks"]
    assert admission.parent is not None and format(admission.parent.span_id, "016x") == PARENT_SPAN
    for name in ("queue_wait", "placement", "engine_stream"):
        span = by_name[name]
        assert span.parent is not None and span.parent.span_id == admission.context.span_id, name
        assert span.attributes is not None and span.attributes["llorch.task_id"] == task_id
    queue, stream = by_name["queue_wait"], by_name["engine_stream"]
    assert queue.start_time is not None and queue.end_time is not None and stream.end_time is not None
    assert queue.start_time <= queue.end_time <= stream.end_time
    assert [e.name for e in stream.events] == ["first_token"]
    assert admission.attributes is not None and admission.attributes[CORRELATION_ATTRIBUTE] == "cid-trace-1"
