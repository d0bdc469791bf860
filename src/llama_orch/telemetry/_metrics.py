"""Prometheus metrics (``GET /metrics``): the families, their label sets, and bounded cardinality.

Every family, its type and its labels are listed in ``docs/metrics.md`` (a test keeps the two in
step). Labels take values from small closed sets: pool ids and replica ids from the config or
registrations, priorities, error codes, policy labels, route templates — never task, session or
correlation ids. Each label is also guarded: once it has seen ``max_label_values`` distinct values,
further ones are counted under ``other``, so no input can grow a family without bound.

Each :class:`Metrics` owns its registry (several apps in one process, e.g. tests, do not mix).
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OTHER = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class LabelGuard:
    """Admits at most ``limit`` distinct values per label name; the rest become ``other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, value: object) -> str:
        text = str(value)
        seen = self._seen.get(name)
        if seen is not None and text in seen:
            return text
        with self._lock:
            seen = self._seen.setdefault(name, set())
            if text in seen:
                return text
            if len(seen) >= self._limit:
                return OTHER
            seen.add(text)
            return text


class _Durations:
    """Observations of one duration histogram child not yet added to it (see :meth:`Metrics.http`)."""

    __slots__ = ("buckets", "child", "sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.sum: float = child._sum.get()
        """The child's sum as observe() would have left it: added to one observation at a time,
        in order (the same float additions, so the same value to the last bit)."""
        self.buckets = [0] * len(child._upper_bounds)

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        # The bucket Histogram.observe counts it in: the first upper bound >= seconds.
        self.buckets[bisect_left(self.child._upper_bounds, seconds)] += 1

    def flush(self) -> None:
        # What Histogram.observe does per observation (prometheus-client 0.2x: its _sum and
        # _buckets values), once per bucket; tests/telemetry compares the exposition with observe()'s.
        buckets, self.buckets = self.buckets, [0] * len(self.buckets)
        self.child._sum.set(self.sum)
        for value, n in zip(self.child._buckets, buckets, strict=True):
            if n:
                value.inc(n)


class _Pending:
    """Requests of one route, method and status counted since the last collection: the request
    counter's child and how many it is owed, and the duration histogram's pending observations."""

    __slots__ = ("count", "durations", "requests")

    def __init__(self, requests: Any, durations: _Durations) -> None:
        self.requests = requests
        self.durations = durations
        self.count = 0

    def flush(self) -> None:
        if self.count:
            count, self.count = self.count, 0
            self.requests.inc(count)


class _Flush(Collector):
    """Registered first: before any family is collected, what was counted on the hot path
    (requests, admissions) is added to the families (nothing of its own to expose)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        self._metrics.flush()
        return []


class _GpuCollector(Collector):
    """GPU utilisation and memory read from NVML at scrape time (nothing when there is no GPU)."""

    def __init__(self, read: Callable[[], Sequence[tuple[str, float, int, int]]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        util = GaugeMetricFamily("llorch_gpu_utilization_ratio", "GPU busy fraction (NVML).", labels=["gpu"])
        used = GaugeMetricFamily("llorch_gpu_memory_used_bytes", "GPU memory in use (NVML).", labels=["gpu"])
        total = GaugeMetricFamily("llorch_gpu_memory_total_bytes", "GPU memory in total (NVML).", labels=["gpu"])
        for gpu, ratio, used_bytes, total_bytes in self._read():
            util.add_metric([gpu], ratio)
            used.add_metric([gpu], used_bytes)
            total.add_metric([gpu], total_bytes)
        yield util
        yield used
        yield total


def nvml_readings() -> list[tuple[str, float, int, int]]:
    """(index, utilisation ratio, used bytes, total bytes) per NVIDIA GPU; empty without NVML."""
    try:
        import pynvml  # type: ignore[import-untyped]  # the bindings ship no type information
    except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append((str(index), float(rates.gpu) / 100.0, int(memory.used), int(memory.total)))
        return out
    except pynvml.NVMLError:
        return []
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


class Metrics:
    """Every metric orchestratord exposes. Record through the methods; :meth:`render` is ``/metrics``."""

    def __init__(
        self,
        *,
        max_label_values: int = 64,
        gpu_readings: Callable[[], Sequence[tuple[str, float, int, int]]] | None = nvml_readings,
        version: str = "0",
        api_version: str = "0",
    ) -> None:
        # No `*_created` gauge beside every counter and histogram series: it doubles the series
        # count for a timestamp Prometheus does not need (process-wide in prometheus-client).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.guard = LabelGuard(max_label_values)
        self._families: list[tuple[str, str, tuple[str, ...]]] = []
        self._http_pending: dict[tuple[str, str, int], _Pending] = {}
        self._durations: dict[Any, _Durations] = {}
        self._enqueued_children: dict[tuple[str, str], list[Any]] = {}
        self._flush_lock = threading.Lock()
        # Requests and admissions are counted in plain Python (a few hundred ns) and added to their
        # families when the registry is collected (render, get_sample_value): prometheus-client's
        # inc/observe take a lock each (~5 us a request on these machines). Record and collect on
        # one thread (the app's loop), as orchestratord does.
        self.registry.register(_Flush(self))
        g, c, h = self._gauge, self._counter, self._histogram
        self.queue_depth = g("llorch_queue_depth", "Tasks waiting in a pool's queue.", ["pool", "priority"])
        self.tasks_enqueued = c("llorch_tasks_enqueued", "Tasks admitted into a queue.", ["pool", "priority"])
        self.tasks_started = c("llorch_tasks_started", "Tasks dispatched to a replica.", ["pool"])
        self.tasks_finished = c("llorch_tasks_finished", "Tasks that ended.", ["pool", "outcome"])
        self.tasks_cancelled = c("llorch_tasks_cancelled", "Tasks cancelled by a client.", ["pool"])
        self.tasks_rejected = c("llorch_tasks_rejected", "Refused at admission, by code.", ["pool", "reason"])
        self.backpressure = c("llorch_backpressure_events", "429s and evictions, by policy label.", ["pool", "policy"])
        self.tokens_in = c("llorch_tokens_in", "Prompt tokens sent to engines.", ["pool"])
        self.tokens_out = c("llorch_tokens_out", "Tokens streamed back from engines.", ["pool"])
        self.ttft = h("llorch_time_to_first_token_seconds", "Dispatch to first token.", ["pool"], LATENCY_BUCKETS)
        self.decode = h("llorch_decode_duration_seconds", "First token to the end.", ["pool"], DURATION_BUCKETS)
        self.queue_wait = h("llorch_queue_wait_seconds", "From admission to dispatch.", ["pool", "priority"],
                            DURATION_BUCKETS)  # fmt: skip
        self.engine_restarts = c("llorch_engine_restarts", "Engine processes restarted by supervision.", ["pool"])
        self.replicas = g("llorch_replicas", "Replicas per pool, by state.", ["pool", "state"])
        self.kv_cache = g("llorch_kv_cache_usage_ratio", "KV cache in use, where reported.", ["pool", "replica"])
        self.artifact_bytes = g("llorch_artifact_store_bytes", "Bytes held by the artifact store.")
        self.artifact_objects = g("llorch_artifact_store_objects", "Artifacts in the store.")
        self.auth_failures = c("llorch_auth_failures", "Refused credentials.", ["method", "reason"])
        self.rate_limited = c("llorch_rate_limited", "Requests refused by a per-identity rate limit.", ["kind"])
        self.policy_decisions = c("llorch_policy_decisions", "Policy hook decisions.", ["kind", "decision"])
        self.http_requests = c("llorch_http_requests", "HTTP requests by route.", ["route", "method", "status"])
        self.http_duration = h("llorch_http_request_duration_seconds", "Handler time (SSE: the stream).",
                               ["route", "method"], HTTP_BUCKETS)  # fmt: skip
        self.build_info = Info("llorch_build", "Versions of orchestratord and its API.", registry=self.registry)
        self._families.append(("llorch_build_info", "info", ("api_version", "version")))
        self.build_info.info({"version": version, "api_version": api_version})
        if gpu_readings is not None:
            self.registry.register(_GpuCollector(gpu_readings))
        for name in ("llorch_gpu_utilization_ratio", "llorch_gpu_memory_used_bytes", "llorch_gpu_memory_total_bytes"):
            self._families.append((name, "gauge", ("gpu",)))

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        self._families.append((f"{name}_total", "counter", tuple(sorted(labels))))
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        self._families.append((name, "gauge", tuple(sorted(labels))))
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> Histogram:
        self._families.append((name, "histogram", tuple(sorted(labels))))
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    # -- recording (label values pass through the guard) -----------------------------------------

    def _l(self, **labels: object) -> dict[str, str]:
        return {k: self.guard(k, v) for k, v in labels.items()}

    def enqueued(self, pool: str, priority: str) -> None:
        entry = self._enqueued_children.get((pool, priority))
        if entry is None:  # resolved once per pool and priority: admission is the hot path
            child = self.tasks_enqueued.labels(**self._l(pool=pool, priority=priority))
            if len(self._enqueued_children) >= 4096:
                child.inc()
                return
            entry = self._enqueued_children[(pool, priority)] = [child, 0]
        entry[1] += 1  # added to the counter at the next collection (flush)

    def flush(self) -> None:
        """Add what :meth:`http` and :meth:`enqueued` counted since the last call to their families
        (the registry's collection calls it first)."""
        with self._flush_lock:
            for entry in self._enqueued_children.values():
                if entry[1]:
                    count, entry[1] = entry[1], 0
                    entry[0].inc(count)
            for pending in self._http_pending.values():
                pending.flush()
            for durations in self._durations.values():
                durations.flush()

    def started(self, pool: str, priority: str, queue_wait_s: float) -> None:
        self.tasks_started.labels(**self._l(pool=pool)).inc()
        self.queue_wait.labels(**self._l(pool=pool, priority=priority)).observe(queue_wait_s)

    def rejected(self, pool: str, reason: str, policy_label: str | None = None) -> None:
        self.tasks_rejected.labels(**self._l(pool=pool, reason=reason)).inc()
        if policy_label:
            self.backpressure.labels(**self._l(pool=pool, policy=policy_label)).inc()

    def evicted(self, pool: str, policy_label: str) -> None:
        self.backpressure.labels(**self._l(pool=pool, policy=policy_label)).inc()

    def cancelled(self, pool: str) -> None:
        self.tasks_cancelled.labels(**self._l(pool=pool)).inc()

    def finished(
        self, pool: str, outcome: str, *, tokens_in: int = 0, tokens_out: int = 0,
        ttft_s: float | None = None, decode_s: float | None = None,
    ) -> None:  # fmt: skip
        labels = self._l(pool=pool)
        self.tasks_finished.labels(**self._l(pool=pool, outcome=outcome)).inc()
        if tokens_in:
            self.tokens_in.labels(**labels).inc(tokens_in)
        if tokens_out:
            self.tokens_out.labels(**labels).inc(tokens_out)
        if ttft_s is not None:
            self.ttft.labels(**labels).observe(ttft_s)
        if decode_s is not None:
            self.decode.labels(**labels).observe(decode_s)

    def set_queue_depth(self, pool: str, priority: str, depth: int) -> None:
        self.queue_depth.labels(**self._l(pool=pool, priority=priority)).set(depth)

    def set_replicas(self, pool: str, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.replicas.labels(**self._l(pool=pool, state=state)).set(count)

    def set_kv_cache(self, pool: str, replica: str, ratio: float) -> None:
        self.kv_cache.labels(**self._l(pool=pool, replica=replica)).set(ratio)

    def engine_restarted(self, pool: str) -> None:
        self.engine_restarts.labels(**self._l(pool=pool)).inc()

    def auth_failed(self, method: str, reason: str) -> None:
        self.auth_failures.labels(**self._l(method=method, reason=reason)).inc()

    def policy_decided(self, kind: str, allowed: bool) -> None:
        self.policy_decisions.labels(**self._l(kind=kind, decision="allow" if allowed else "deny")).inc()

    def http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        pending = self._http_pending.get(key)
        if pending is None:  # the first request of this route/method/status: resolve the label children once
            labels = self._l(route=route, method=method)
            child = self.http_duration.labels(**labels)
            durations = self._durations.get(child)  # one per child: guarded labels may share one
            if durations is None:
                durations = self._durations[child] = _Durations(child)
            pending = self._http_pending[key] = _Pending(
                self.http_requests.labels(**labels, status=self.guard("status", status)), durations
            )
        pending.count += 1
        pending.durations.observe(seconds)

    def artifact_store(self, size: Callable[[], tuple[int, int]]) -> None:
        """Read the artifact store's (bytes, objects) at each scrape."""
        self.artifact_bytes.set_function(lambda: float(size()[0]))
        self.artifact_objects.set_function(lambda: float(size()[1]))

    # -- exposition --------------------------------------------------------------------------------

    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def families(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(name as queried, type, sorted label names) of every family, as ``docs/metrics.md`` lists them."""
        return list(self._families)
