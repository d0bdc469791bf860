"""The mock engine served over HTTP, speaking llama.cpp ``llama-server``'s wire format.

Routes: ``GET /health``, ``GET /props``, ``POST /completion`` (``"stream": true`` gives SSE
``data: {"content": ..., "stop": false}`` lines and a final ``"stop": true`` line with
``tokens_predicted`` and ``timings``). Slots are enforced: a request beyond them gets ``503``
with llama.cpp's error body, as an overloaded ``llama-server`` would answer. An injected
connection reset aborts the TCP connection mid-stream.

Run it: ``llama-orch-mock-engine --port 8081 --tokens-per-s 1000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from aiohttp import web

from llama_orch.engines._base import EngineRequest
from llama_orch.engines.mock import MockEngine, MockSettings
from llama_orch.errors import EngineError
from llama_orch_api import ErrorCode

ENGINE_KEY = web.AppKey("engine", MockEngine)


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "type": kind}}
    return web.json_response(body, status=status)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _props(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    info = engine.describe()
    return web.json_response(
        {
            "default_generation_settings": {"n_ctx": info.ctx_max},
            "total_slots": info.slots,
            "model_path": "mock",
            "build_info": info.version,
        }
    )


async def _completion(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        body = await request.json()
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            raise TypeError("prompt must be a string")
        n_predict = int(body.get("n_predict", 16))
        seed = body.get("seed")
        req = EngineRequest(
            # A seedless request gets its own random output, as a real engine's would.
            task_id=uuid.uuid4().hex,
            prompt=prompt,
            max_tokens=max(1, n_predict),
            seed=None if seed is None or seed < 0 else int(seed),
            sampler_profile=str(body.get("sampler_profile", "llorch/sampler@1")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, f"invalid request: {exc}", "invalid_request_error")
    if engine.active >= engine.settings.slots:
        return _error(503, "no slot available", "unavailable_error")
    if not body.get("stream", False):
        parts: list[str] = []
        async for batch in engine.stream(req):
            parts.extend(batch)
        return web.json_response({"content": "".join(parts), "stop": True, "tokens_predicted": len(parts)})

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    started = time.monotonic()
    first_ms: float | None = None
    n = 0
    try:
        async for batch in engine.stream(req):
            if first_ms is None:
                first_ms = (time.monotonic() - started) * 1000
            n += len(batch)
            await response.write(
                b"".join(b'data: {"content":' + json.dumps(t).encode() + b',"stop":false}\n\n' for t in batch)
            )
    except EngineError as exc:
        if exc.code is ErrorCode.WORKER_RESET and request.transport is not None:
            request.transport.abort()
            return response
        err = {"error": {"code": 500, "message": exc.message, "type": "server_error"}}
        await response.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        return response
    decode_ms = (time.monotonic() - started) * 1000 - (first_ms or 0.0)
    final = {
        "content": "",
        "stop": True,
        "stop_type": "limit",
        "tokens_predicted": n,
        "timings": {"prompt_ms": first_ms or 0.0, "predicted_ms": decode_ms, "predicted_n": n},
    }
    await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
    return response


def make_app(settings: MockSettings | None = None) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = MockEngine(settings)
    app.router.add_get("/health", _health)
    app.router.add_get("/props", _props)
    app.router.add_post("/completion", _completion)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llama-orch-mock-engine", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--tokens-per-s", type=float, default=200.0)
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--stamp-tokens", action="store_true")
    args = parser.parse_args(argv)
    settings = MockSettings(
        tokens_per_s=args.tokens_per_s,
        first_token_ms=args.first_token_ms,
        slots=args.slots,
        stamp_tokens=args.stamp_tokens,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())
    web.run_app(make_app(settings), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
