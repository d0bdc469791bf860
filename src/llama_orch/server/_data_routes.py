"""Data-plane routes: tasks, their SSE streams, cancel, sessions (OC-CLI-2001…2006)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from llama_orch.core import parse_task
from llama_orch.errors import OrchError
from llama_orch.scheduler import Reader
from llama_orch.server._http import ADMITTED, CID, CONFIG, ORCH, E, Route, json_response, read_body
from llama_orch_api import AdmissionResponse, ErrorCode, SessionInfo, TaskRequest


async def create_task(request: web.Request) -> web.Response:
    orch = request.app[ORCH]
    body = await read_body(request)
    admitted = orch.submit(parse_task(body), body)
    if orch.journal is not None:  # the task is journaled before its 202 (one group commit for many)
        await orch.wait_durable(admitted.task_id)
    headers = {"Location": admitted.stream_url, "X-Backoff-Ms": str(admitted.backoff_ms)}
    if admitted.session_id is not None:
        headers.update(orch.budget_headers(admitted.session_id))
    request[ADMITTED] = admitted
    return json_response(admitted.to_json(), status=202, headers=headers)


async def stream_task(request: web.Request) -> web.StreamResponse:
    record = request.app[ORCH].get_task(request.match_info["task_id"])
    # As declared (pattern ^[0-9]+$): ASCII digits only, and a header that is sent must say something.
    last = request.headers.get("Last-Event-ID")
    if last is not None and not (last.isascii() and last.isdigit()):
        raise OrchError(ErrorCode.INVALID_PARAMS, "Last-Event-ID must be a non-negative integer event id")
    cursor = min(int(last), record.readable) if last is not None else 0
    heartbeat = request.app[CONFIG].server.heartbeat_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Correlation-Id": request[CID],
        }
    )
    await response.prepare(request)
    # At high token rates a stream gets a write per journal commit (one a millisecond); frames that
    # come sooner than this after a write wait for the next, which takes them all.
    gap = request.app[CONFIG].server.sse_min_write_interval_ms / 1000
    loop = asyncio.get_running_loop()
    written_at = 0.0
    reader = Reader(record, heartbeat)
    record.readers += 1  # a task being read is no orphan
    try:
        while True:
            end = record.readable
            if cursor < end:
                if gap and not record.ended:
                    wait = written_at + gap - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        continue
                frames = record.frames
                # Everything already readable goes out in one write (coalescing is worth 3x).
                await response.write(b"".join(frames[cursor:end]) if end - cursor > 1 else frames[cursor])
                written_at = loop.time()
                reader.wrote()
                cursor = end
                continue
            if record.ended:
                break
            if not await reader.wait(cursor):
                await response.write(b": keep-alive\n\n")
                reader.wrote()
    except ConnectionError:
        # The client went away; the task keeps running and can be resumed with Last-Event-ID.
        return response
    finally:
        reader.close()
        record.readers -= 1
        record.last_read = time.monotonic()
    await response.write_eof()
    return response


async def cancel_task(request: web.Request) -> web.Response:
    request.app[ORCH].cancel(request.match_info["task_id"])
    return web.Response(status=204)


async def get_session(request: web.Request) -> web.Response:
    orch = request.app[ORCH]
    session_id = request.match_info["session_id"]
    return json_response(orch.session_info(session_id), headers=orch.budget_headers(session_id))


async def delete_session(request: web.Request) -> web.Response:
    request.app[ORCH].delete_session(request.match_info["session_id"])
    return web.Response(status=204)


ROUTES = [
    Route(
        "POST", "/v1/tasks", create_task, "createTask", TaskRequest,
        {
            "202": AdmissionResponse, "400": E, "402": E, "403": E, "405": E, "409": E, "410": E,
            "413": E, "429": E, "500": E, "503": E,
        },
    ),
    Route("GET", "/v1/tasks/{task_id}/stream", stream_task, "streamTask",
          responses={"200": None, "400": E, "404": E, "500": E}),
    Route("POST", "/v1/tasks/{task_id}/cancel", cancel_task, "cancelTask",
          responses={"204": None, "404": E, "500": E}),
    Route("GET", "/v1/sessions/{session_id}", get_session, "getSession",
          responses={"200": SessionInfo, "404": E, "500": E}),
    Route("DELETE", "/v1/sessions/{session_id}", delete_session, "deleteSession",
          responses={"204": None, "404": E, "500": E}),
]  # fmt: skip
