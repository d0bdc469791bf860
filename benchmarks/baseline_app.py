"""The admission baseline: a bare Starlette endpoint served by uvicorn (one process, one worker).

``POST /v1/tasks`` validates the body with the same pydantic model orchestratord uses
(``TaskRequest.model_validate_json``) and answers ``202`` with a small JSON body; nothing is
queued. ``GET /healthz`` answers 200. Run: ``python -m benchmarks.baseline_app --port 9000``.
"""

from __future__ import annotations

import argparse
import importlib.util
import uuid

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llama_orch_api import TaskRequest


async def create_task(request: Request) -> Response:
    body = await request.body()
    try:
        TaskRequest.model_validate_json(body)
    except ValidationError:
        return Response(b'{"code":"INVALID_PARAMS"}', status_code=400, media_type="application/json")
    task_id = uuid.uuid4().hex
    content = f'{{"task_id":"{task_id}","queue_position":0,"predicted_start_ms":0}}'.encode()
    return Response(content, status_code=202, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def make_app() -> Starlette:
    return Starlette(routes=[Route("/v1/tasks", create_task, methods=["POST"]), Route("/healthz", healthz)])


def http_impl() -> str:
    """uvicorn's HTTP parser: httptools when installed (its fast path), else h11."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="baseline_app", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    uvicorn.run(
        make_app(),
        host="127.0.0.1",
        port=args.port,
        loop=loop,
        http=http_impl(),
        access_log=False,
        log_level="warning",
        workers=None,
    )


if __name__ == "__main__":
    main()
