"""The mock engine served over HTTP, speaking llama.cpp ``llama-server``'s wire format.

Routes: ``GET /health``, ``GET /props``, ``POST /completion`` (``"stream": true`` gives SSE
``data: {"content": ..., "stop": false}`` lines and a final ``"stop": true`` line with
``tokens_predicted`` and ``timings``), ``POST /v1/chat/completions`` (streamed OpenAI chunks, the
last with ``finish_reason`` and ``timings``, then ``data: [DONE]``) and ``POST /v1/embeddings``.
``id_slot`` and ``cache_prompt`` are honoured as the in-process mock does (``timings.cache_n``).
Slots are enforced: a request beyond them gets ``503`` with llama.cpp's error body, as an
overloaded ``llama-server`` would answer. An injected
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

from llama_orch.engines._base import ChatMessage, EngineRequest, StreamReport
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


def _request(body: dict[str, object], *, chat: bool) -> EngineRequest:
    """The engine request a llama.cpp-style body asks for (``ValueError``/``KeyError``/``TypeError`` when bad)."""
    messages: tuple[ChatMessage, ...] | None = None
    if chat:
        raw = body["messages"]
        if not isinstance(raw, list) or not raw:
            raise TypeError("messages must be a non-empty list")
        messages = tuple(ChatMessage(str(m["role"]), str(m["content"])) for m in raw)  # type: ignore[arg-type]
        prompt = ""
    else:
        prompt = body["prompt"]  # type: ignore[assignment]
        if not isinstance(prompt, str):
            raise TypeError("prompt must be a string")
    n_predict = int(body.get("max_tokens" if chat else "n_predict", 16))  # type: ignore[call-overload]
    seed = body.get("seed")
    slot = body.get("id_slot")
    return EngineRequest(
        # A seedless request gets its own random output, as a real engine's would.
        task_id=uuid.uuid4().hex,
        prompt=prompt,
        max_tokens=max(1, n_predict),
        seed=None if not isinstance(seed, int) or seed < 0 else seed,
        sampler_profile=str(body.get("sampler_profile", "llorch/sampler@1")),
        messages=messages,
        slot=slot if isinstance(slot, int) and slot >= 0 else None,
        cache_prompt=bool(body.get("cache_prompt", True)),
        report=StreamReport(),
    )


def _timings(report: StreamReport | None, first_ms: float, decode_ms: float, n: int) -> dict[str, object]:
    cached = (report.cached_tokens or 0) if report else 0
    prompt = (report.prompt_tokens or 0) if report else 0
    return {
        "cache_n": cached,
        "prompt_n": prompt - cached,
        "prompt_ms": first_ms,
        "predicted_ms": decode_ms,
        "predicted_n": n,
    }


async def _chat(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        req = _request(await request.json(), chat=True)
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, f"invalid request: {exc}", "invalid_request_error")
    if engine.active >= engine.settings.slots:
        return _error(503, "no slot available", "unavailable_error")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    started = time.monotonic()
    first_ms: float | None = None
    n = 0

    def chunk(delta: dict[str, str | None], finish: str | None = None, **extra: object) -> bytes:
        body = {"object": "chat.completion.chunk", "model": "mock", **extra}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    try:
        await response.write(chunk({"role": "assistant", "content": None}))
        async for batch in engine.stream(req):
            if first_ms is None:
                first_ms = (time.monotonic() - started) * 1000
            n += len(batch)
            await response.write(b"".join(chunk({"content": t}) for t in batch))
    except EngineError as exc:
        if exc.code is ErrorCode.WORKER_RESET and request.transport is not None:
            request.transport.abort()
            return response
        err = {"error": {"code": 500, "message": exc.message, "type": "server_error"}}
        await response.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        return response
    decode_ms = (time.monotonic() - started) * 1000 - (first_ms or 0.0)
    await response.write(chunk({}, "length", timings=_timings(req.report, first_ms or 0.0, decode_ms, n)))
    await response.write(b"data: [DONE]\n\n")
    return response


async def _embeddings(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    try:
        body = await request.json()
        raw = body["input"]
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            raise TypeError("input must be a string or a non-empty list of strings")
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, f"invalid request: {exc}", "invalid_request_error")
    result = await engine.embed(inputs)
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return web.json_response({"object": "list", "model": "mock", "data": data, "usage": usage})


async def _completion(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        body = await request.json()
        req = _request(body, chat=False)
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
        "timings": _timings(req.report, first_ms or 0.0, decode_ms, n),
    }
    await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
    return response


def make_app(settings: MockSettings | None = None) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = MockEngine(settings)
    app.router.add_get("/health", _health)
    app.router.add_get("/props", _props)
    app.router.add_post("/completion", _completion)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/embeddings", _embeddings)
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
