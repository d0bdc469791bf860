"""The HTTP surface of orchestratord (aiohttp.web).

Every response carries ``X-Correlation-Id`` (the client's, when it sent a sane one). Every error
is an :class:`~llama_orch_api.ErrorEnvelope` with a 4xx/5xx status from the taxonomy; a crash in a
handler is logged and answered ``500 INTERNAL``, never a bare traceback.

Routes live in one module per room (``_data_routes``, ``_control_routes``…), each a list of
:class:`~llama_orch.server._http.Route`; ``/openapi.json`` is generated from the same list.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from llama_orch.catalog import Catalog
from llama_orch.errors import OrchError
from llama_orch.policy import default_redactor, set_default_redactor
from llama_orch.scheduler import Orchestrator, RecordWriter
from llama_orch.server import (
    _artifact_routes,
    _catalog_routes,
    _control_routes,
    _data_routes,
    _openai_routes,
    _registry_routes,
    _tool_routes,
    openapi,
)
from llama_orch.server._http import ARTIFACTS, CATALOG, CID, CONFIG, ORCH, Handler, Route, error_response
from llama_orch.server._security import SECURITY, PolicyArtifactStore, Security, secure, secure_document
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import ErrorCode

log = logging.getLogger("llama_orch.server")

ROUTES: list[Route] = [
    *_data_routes.ROUTES,
    *_control_routes.ROUTES,
    *_artifact_routes.ROUTES,
    *_catalog_routes.ROUTES,
    *_registry_routes.ROUTES,
    *_tool_routes.ROUTES,
]
"""Every API operation the server serves."""

_CID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.PAYLOAD_TOO_LARGE}


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Correlation-Id", "")
    # A correlation id is echoed everywhere: one that carries a secret is replaced.
    sane = supplied and _CID_OK.match(supplied) and default_redactor().redact(supplied)[1] == 0
    cid = supplied if sane else os.urandom(16).hex()
    request[CID] = cid
    try:
        # The security middleware's work (auth, scopes, limits, metrics, audit), called directly:
        # one middleware layer per request, not two.
        response = await secure(request, handler, cid)
    except OrchError as exc:
        response = error_response(exc, cid)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.INVALID_PARAMS)
        message = {
            ErrorCode.NOT_FOUND: f"no route for {request.path}",
            ErrorCode.METHOD_NOT_ALLOWED: f"{request.method} is not allowed on {request.path}",
            ErrorCode.PAYLOAD_TOO_LARGE: "request body too large "
            f"(limit {request.app[CONFIG].server.max_body_bytes} bytes)",
        }.get(code, exc.reason)
        response = error_response(OrchError(code, message), cid)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path, extra={"correlation_id": cid})
        response = error_response(OrchError(ErrorCode.INTERNAL, "internal server error"), cid)
    # Streaming handlers set the header themselves before sending their headers.
    if not response.prepared:
        response.headers["X-Correlation-Id"] = cid
    return response


async def served_openapi(request: web.Request) -> web.Response:
    return web.json_response(secure_document(openapi.served_document(ROUTES), ROUTES))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(config: OrchestratorConfig) -> web.Application:
    """The orchestratord application; pools start and stop with the app's lifespan."""
    # The largest body any route takes; each route enforces its own limit (read_body).
    max_body = max(config.server.max_body_bytes, config.artifacts.max_bytes)
    app = web.Application(middlewares=[envelope_middleware], client_max_size=max_body)
    app[CONFIG] = config
    # One orchestratord per process: what its config says to redact is what every log line, error
    # message and stored artifact of the process redacts.
    set_default_redactor(config.policy.redaction.redactor())
    security = app[SECURITY] = Security(
        auth=config.auth,
        policy=config.policy,
        telemetry=config.telemetry,
        data_dir=Path(config.data_dir) if config.data_dir else None,
        routes=ROUTES,
    )
    store = PolicyArtifactStore(
        config.data_dir, inline_max_bytes=config.artifacts.inline_max_bytes, max_bytes=config.artifacts.max_bytes
    )
    store.security = security
    app[ARTIFACTS] = store
    app[CATALOG] = Catalog.in_data_dir(
        config.data_dir, trusted_keys=config.catalog.trusted_keys, default_policy=config.catalog.policy()
    )
    orchestrator = app[ORCH] = Orchestrator(config.scheduler_settings())
    orchestrator.catalog = app[CATALOG]
    orchestrator.records = RecordWriter(app[ARTIFACTS].put)
    if orchestrator.journal is not None:
        # What stays at rest of an ended task (its request and events) is redacted like its record.
        orchestrator.journal.redact = default_redactor().clean
        orchestrator.journal.redact_pieces = default_redactor().redact_pieces  # secrets split across tokens
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    # The OpenAI-compatible front door (contracts/openapi/openai.yaml), on the same port.
    for method, path, handler in _openai_routes.ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/openapi.json", served_openapi)
    app.router.add_get("/healthz", healthz)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await app[ORCH].start()
        yield
        await app[ORCH].aclose()
        app[SECURITY].tracing.shutdown()

    async def end_streams(app: web.Application) -> None:
        # Runs before aiohttp waits for open handlers: every open SSE stream gets its final
        # event (a retriable error) and closes, instead of holding shutdown for its timeout.
        await app[ORCH].aclose()

    # Before the orchestrator's: contexts clean up in reverse, so the store outlives it.
    app.cleanup_ctx.append(_artifact_routes.store_lifespan)
    app.cleanup_ctx.append(_catalog_routes.catalog_lifespan)
    app.cleanup_ctx.append(lifespan)
    app.cleanup_ctx.append(_control_routes.operations_lifespan)  # ends before the orchestrator stops
    app.on_shutdown.append(end_streams)
    return app


__all__ = ["ROUTES", "create_app"]
