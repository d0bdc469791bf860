"""Tracing: off by default; in-memory exporter; the client's traceparent becomes the parent;
traceparent is injected for engines; correlation ids on spans."""

from __future__ import annotations

import asyncio

from opentelemetry import trace

from llama_orch.telemetry import CORRELATION_ATTRIBUTE, Tracing, TracingConfig, context_of, current_ids

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


def test_off_by_default_is_a_no_op() -> None:
    tracing = Tracing()
    assert not tracing.enabled
    with tracing.span("admission") as span:
        assert not span.get_span_context().is_valid
    assert Tracing(TracingConfig(enabled=False)).tracer is not None


async def test_one_trace_from_the_clients_parent_through_nested_spans() -> None:
    tracing, exporter = Tracing.in_memory()
    parent = Tracing.extract({"TraceParent": TRACEPARENT})
    with tracing.span("admission", context=parent, correlation_id="cid-1", kind=trace.SpanKind.SERVER) as admission:
        queue = tracing.start_span("queue_wait", context=context_of(admission), correlation_id="cid-1")
    await asyncio.sleep(0)
    queue.end()
    with tracing.span("engine_stream", context=context_of(queue), correlation_id="cid-1"):
        headers = Tracing.inject({})
        assert current_ids() is not None
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"admission", "queue_wait", "engine_stream"}
    assert {format(s.context.trace_id, "032x") for s in spans.values()} == {CLIENT_TRACE}
    assert format(spans["admission"].parent.span_id, "016x") == CLIENT_SPAN  # type: ignore[union-attr]
    assert spans["queue_wait"].parent.span_id == spans["admission"].context.span_id  # type: ignore[union-attr]
    assert spans["engine_stream"].parent.span_id == spans["queue_wait"].context.span_id  # type: ignore[union-attr]
    assert all(s.attributes[CORRELATION_ATTRIBUTE] == "cid-1" for s in spans.values())  # type: ignore[index]
    # what an engine would receive: same trace, the engine-stream span as parent
    engine_span = format(spans["engine_stream"].context.span_id, "016x")
    assert headers["traceparent"] == f"00-{CLIENT_TRACE}-{engine_span}-01"
    tracing.shutdown()


def test_garbage_traceparent_starts_a_new_trace() -> None:
    tracing, exporter = Tracing.in_memory()
    with tracing.span("admission", context=Tracing.extract({"traceparent": "00-zz-yy-01"})):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and format(span.context.trace_id, "032x") != CLIENT_TRACE
    assert current_ids() is None


def test_otlp_exporter_is_configurable() -> None:
    # A collector address on loopback with nothing listening: setup and shutdown must not fail.
    tracing = Tracing(TracingConfig(enabled=True, otlp_endpoint="http://127.0.0.1:9/v1/traces", sample_ratio=0.5,
                                     otlp_timeout_s=0.5))  # fmt: skip
    assert tracing.enabled
    with tracing.span("x"):
        pass
    tracing.shutdown()
