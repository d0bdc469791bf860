"""Tools and telemetry routes: the safe fetch tool and ``/metrics``.

``POST /v1/tools/fetch`` fetches one URL through the outbound policy (:mod:`llama_orch.policy`)
and records every attempt — fetched or refused — as a ``trace`` artifact (tags ``tool:fetch``).
``GET /metrics`` is the Prometheus exposition; the queue and replica gauges are read at scrape time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from pathlib import Path

from aiohttp import web

from llama_orch.errors import OrchError
from llama_orch.policy import FetchFailed, PolicyDenied, parse_target
from llama_orch.server._http import ARTIFACTS, ORCH, E, Route, json_response, not_found, read_model
from llama_orch.server._security import IDENTITY, SECURITY
from llama_orch_api import FetchHop, FetchRequest, FetchResponse, Priority


async def fetch_url(request: web.Request) -> web.Response:
    sec = request.app[SECURITY]
    body = await read_model(request, FetchRequest)
    identity = request.get(IDENTITY)
    who = identity.label if identity is not None else None
    store = request.app[ARTIFACTS]
    shown = sec.redactor.redact_url(body.url)
    try:
        result = await sec.fetcher.fetch(body.url, method=body.method, max_bytes=body.max_bytes, identity=who)
    except (PolicyDenied, FetchFailed) as exc:
        await store.put(
            kind="trace",
            content={"tool": "fetch", "url": shown, "method": body.method, "identity": who,
                     "error": json.loads(exc.envelope().model_dump_json(exclude_none=True))},
            tags=["tool:fetch", "outcome:refused" if isinstance(exc, PolicyDenied) else "outcome:failed"],
        )  # fmt: skip
        raise
    trace = result.trace_content(sec.redactor)
    trace["identity"] = who
    tags = ["tool:fetch", "outcome:fetched", f"status:{result.status}"]
    with contextlib.suppress(ValueError):
        tags.append(f"host:{parse_target(body.url).host}")
    ref = await store.put(kind="trace", content=trace, tags=tags)
    text = result.text()
    return json_response(
        FetchResponse(
            url=result.url,
            final_url=result.final_url,
            method=body.method,
            status=result.status,
            content_type=result.content_type,
            headers=sec.redactor.redact_headers(result.headers),
            bytes=len(result.body),
            sha256=result.sha256,
            text=sec.redactor.clean(text) if text is not None else None,
            body_base64=base64.b64encode(result.body).decode() if text is None and result.body else None,
            cache=result.cache,
            hops=[FetchHop(url=h.url, status=h.status, address=h.address, rule=h.rule) for h in result.hops],
            elapsed_ms=result.elapsed_ms,
            artifact_id=ref.id,
        )
    )


_STORE_SIZE: dict[str, tuple[float, int, int]] = {}


def _store_size(root: Path, ttl_s: float = 60.0) -> tuple[int, int]:
    """(bytes, files) under the artifact store's folder, recounted at most every ``ttl_s``."""
    key = str(root)
    cached = _STORE_SIZE.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < ttl_s:
        return cached[1], cached[2]
    size = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
                files += 1
            except OSError:
                continue
    _STORE_SIZE[key] = (now, size, files)
    return size, files


async def metrics(request: web.Request) -> web.Response:
    sec = request.app[SECURITY]
    if sec.metrics is None:
        raise not_found("metrics are off (telemetry.metrics: false)")
    orch = request.app[ORCH]
    for rs in orch.replicasets().replicasets:
        counts: dict[str, int] = {}
        for replica in rs.replicas:
            state = str(replica.state)
            counts[state] = counts.get(state, 0) + 1
        sec.metrics.set_replicas(rs.pool, counts)
        try:
            queue = orch.pool(rs.pool).queue
            for priority in Priority:
                sec.metrics.set_queue_depth(rs.pool, priority.value, queue.depth(priority))
        except (OrchError, AttributeError):
            sec.metrics.set_queue_depth(rs.pool, "all", rs.queue_depth)
    store = request.app[ARTIFACTS]
    if not store.ephemeral:
        size, files = _store_size(store.root)
        sec.metrics.artifact_bytes.set(size)
        sec.metrics.artifact_objects.set(files)
    return web.Response(body=sec.metrics.render(), headers={"Content-Type": sec.metrics.content_type})


ROUTES = [
    Route("POST", "/v1/tools/fetch", fetch_url, "fetchUrl", FetchRequest,
          {"200": FetchResponse, "400": E, "401": E, "403": E, "413": E, "429": E, "500": E, "502": E}),
    Route("GET", "/metrics", metrics, "getMetrics", responses={"200": None, "401": E, "403": E, "404": E}),
]  # fmt: skip
