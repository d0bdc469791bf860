"""The HTTP surface of orchestratord (aiohttp.web).

Every response carries ``X-Correlation-Id`` (the client's, when it sent a sane one). Every error
is an :class:`~llama_orch_api.ErrorEnvelope` with a 4xx/5xx status from the taxonomy; a crash in a
handler is logged and answered ``500 INTERNAL``, never a bare traceback.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from llama_orch.errors import OrchError
from llama_orch.server import openapi
from llama_orch.server._orchestrator import Orchestrator
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import ErrorCode, ErrorEnvelope

log = logging.getLogger("llama_orch.server")

ORCH = web.AppKey("orchestrator", Orchestrator)
CONFIG = web.AppKey("config", OrchestratorConfig)
CID = web.RequestKey("correlation_id", str)
_CID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: OrchError, correlation_id: str | None) -> web.Response:
    headers: dict[str, str] = {}
    if error.retry_after_ms is not None and error.status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_ms / 1000)))
        headers["X-Backoff-Ms"] = str(error.retry_after_ms)
    return web.Response(
        status=error.status,
        body=error.envelope(correlation_id).model_dump_json(exclude_none=True).encode(),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Correlation-Id", "")
    cid = supplied if _CID_OK.match(supplied) else uuid.uuid4().hex
    request[CID] = cid
    try:
        return await handler(request)
    except OrchError as exc:
        return error_response(exc, cid)
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
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path, extra={"correlation_id": cid})
        return error_response(OrchError(ErrorCode.INTERNAL, "internal server error"), cid)


async def _add_correlation_header(request: web.Request, response: web.StreamResponse) -> None:
    cid = request.get(CID)
    if cid is not None:
        response.headers["X-Correlation-Id"] = cid


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body.encode(), content_type="application/json", headers=headers)


# -- routes -------------------------------------------------------------------------------------


async def create_task(request: web.Request) -> web.Response:
    limit = request.app[CONFIG].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.read()
    admitted = request.app[ORCH].submit(body)
    return _json(
        admitted.model_dump_json(),
        status=202,
        headers={"Location": admitted.stream_url, "X-Backoff-Ms": str(admitted.backoff_ms)},
    )


async def stream_task(request: web.Request) -> web.StreamResponse:
    orch = request.app[ORCH]
    record = orch.get_task(request.match_info["task_id"])
    last = request.headers.get("Last-Event-ID", "").strip()
    if last and not last.isdigit():
        raise OrchError(ErrorCode.INVALID_PARAMS, "Last-Event-ID must be a non-negative integer event id")
    cursor = min(int(last), len(record.frames)) if last else 0
    heartbeat = request.app[CONFIG].server.heartbeat_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        while True:
            frames = record.frames
            if cursor < len(frames):
                end = len(frames)
                await response.write(b"".join(frames[cursor:end]) if end - cursor > 1 else frames[cursor])
                cursor = end
                continue
            if record.terminal:
                break
            if not await record.wait(cursor, heartbeat):
                await response.write(b": keep-alive\n\n")
    except (ConnectionResetError, ConnectionError):
        # The client went away; the task keeps running and may be resumed with Last-Event-ID.
        return response
    await response.write_eof()
    return response


async def cancel_task(request: web.Request) -> web.Response:
    request.app[ORCH].cancel(request.match_info["task_id"])
    return web.Response(status=204)


async def get_session(request: web.Request) -> web.Response:
    return _json(request.app[ORCH].session_info(request.match_info["session_id"]).model_dump_json())


async def delete_session(request: web.Request) -> web.Response:
    request.app[ORCH].delete_session(request.match_info["session_id"])
    return web.Response(status=204)


async def capabilities(request: web.Request) -> web.Response:
    return _json(request.app[ORCH].capabilities().model_dump_json())


async def served_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi.served_document(request.app))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


ROUTES: list[tuple[str, str, Handler, str]] = [
    ("POST", "/v1/tasks", create_task, "createTask"),
    ("GET", "/v1/tasks/{task_id}/stream", stream_task, "streamTask"),
    ("POST", "/v1/tasks/{task_id}/cancel", cancel_task, "cancelTask"),
    ("GET", "/v1/sessions/{session_id}", get_session, "getSession"),
    ("DELETE", "/v1/sessions/{session_id}", delete_session, "deleteSession"),
    ("GET", "/v1/capabilities", capabilities, "getCapabilities"),
]
"""API routes: method, path, handler, operationId (as in the OpenAPI files)."""


def create_app(config: OrchestratorConfig) -> web.Application:
    """The orchestratord application; pools start and stop with the app's lifespan."""
    app = web.Application(middlewares=[envelope_middleware], client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[ORCH] = Orchestrator(config)
    for method, path, handler, _ in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/openapi.json", served_openapi)
    app.router.add_get("/healthz", healthz)
    app.on_response_prepare.append(_add_correlation_header)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await app[ORCH].start()
        yield
        await app[ORCH].aclose()

    async def end_streams(app: web.Application) -> None:
        # Runs before aiohttp waits for open handlers: every open SSE stream gets its final
        # event (a retriable error) and closes, instead of holding shutdown for its timeout.
        await app[ORCH].aclose()

    app.cleanup_ctx.append(lifespan)
    app.on_shutdown.append(end_streams)
    return app


__all__ = ["ROUTES", "ErrorEnvelope", "create_app"]
