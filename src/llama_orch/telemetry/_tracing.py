"""OpenTelemetry traces: off by default; spans for admission, queue wait, placement, engine stream
and artifact write; W3C ``traceparent`` taken from clients and passed on to engines.

Each :class:`Tracing` owns its tracer provider (nothing global is set, so several apps in a process
and the tests stay apart). Disabled, it hands out the API's no-op tracer: spans cost a function call.
Exporters: OTLP over HTTP (``endpoint``, ``headers``; batched) for a collector, or the in-memory
exporter (:meth:`Tracing.in_memory`) for tests. Every span carries ``llorch.correlation_id`` when
one is known, so a trace, the logs and an error envelope point at each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict, Field

_PROPAGATOR = TraceContextTextMapPropagator()
CORRELATION_ATTRIBUTE = "llorch.correlation_id"


class TracingConfig(BaseModel):
    """``telemetry.tracing`` in the orchestratord config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    otlp_endpoint: str = Field("http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces endpoint.")
    otlp_headers: dict[str, str] = Field(default_factory=dict, description="e.g. an API key for the collector.")
    otlp_timeout_s: float = Field(10.0, gt=0, le=60, description="Per export, retries included.")
    service_name: str = "orchestratord"
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Of new traces; a sampled parent is always followed.")


class Tracing:
    def __init__(self, config: TracingConfig | None = None, *, exporter: SpanExporter | None = None) -> None:
        config = config or TracingConfig()
        self.provider: TracerProvider | None = None
        if not config.enabled and exporter is None:
            self.tracer: trace.Tracer = trace.NoOpTracer()
            return
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(
                        endpoint=config.otlp_endpoint, headers=config.otlp_headers, timeout=config.otlp_timeout_s
                    )
                )
            )
        else:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("llama_orch")

    @classmethod
    def in_memory(cls) -> tuple[Tracing, InMemorySpanExporter]:
        exporter = InMemorySpanExporter()
        return cls(TracingConfig(enabled=True), exporter=exporter), exporter

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    @staticmethod
    def extract(headers: Mapping[str, str]) -> Context:
        """The remote parent a client sent (``traceparent``/``tracestate``), or an empty context."""
        return _PROPAGATOR.extract(carrier={k.lower(): v for k, v in headers.items()})

    @staticmethod
    def inject(headers: MutableMapping[str, str], context: Context | None = None) -> MutableMapping[str, str]:
        """Add ``traceparent`` (and ``tracestate``) for the current span, or ``context``'s, to ``headers``."""
        _PROPAGATOR.inject(headers, context=context)
        return headers

    @contextmanager
    def span(
        self,
        name: str,
        *,
        context: Context | None = None,
        correlation_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    ) -> Iterator[trace.Span]:
        attrs: dict[str, Any] = dict(attributes or {})
        if correlation_id:
            attrs[CORRELATION_ATTRIBUTE] = correlation_id
        with self.tracer.start_as_current_span(name, context=context, attributes=attrs, kind=kind) as span:
            yield span

    def start_span(self, name: str, *, context: Context | None = None, correlation_id: str | None = None) -> trace.Span:
        """A span to end by hand (one that outlives a ``with`` block, e.g. a task's queue wait)."""
        attrs = {CORRELATION_ATTRIBUTE: correlation_id} if correlation_id else {}
        return self.tracer.start_span(name, context=context, attributes=attrs)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def context_of(span: trace.Span) -> Context:
    """A context whose current span is ``span`` (to parent later spans or inject headers)."""
    return trace.set_span_in_context(span)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log lines; None outside a recorded span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
