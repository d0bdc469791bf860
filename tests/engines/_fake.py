"""A programmable fake engine server for the HTTP adapter tests (aiohttp.web on 127.0.0.1), and helpers.

A test gives the fake one handler per route (``"POST /generate_stream"``); the fake records every
request (method, path, headers, JSON body) and counts the streams whose client hung up. Handlers
replay a recorded response (``_recorded.py``) or answer with bytes the test spells out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from llama_orch.engines import Engine, EngineRequest
from llama_orch.errors import EngineError
from llama_orch_api import ErrorCode
from tests.conftest import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeServer:
    routes: dict[str, Handler]
    base_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    disconnects: int = 0

    def bodies(self, route: str) -> list[Any]:
        """The JSON bodies sent to ``route`` (``"POST /path"``), in order."""
        method, path = route.split(" ", 1)
        return [s.body for s in self.seen if (s.method, s.path) == (method, path)]

    def count(self, route: str) -> int:
        return len(self.bodies(route))


FAKE_KEY = web.AppKey("fake", FakeServer)
StartFake = Callable[[dict[str, Handler]], Awaitable[FakeServer]]


async def _dispatch(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_KEY]
    body = await request.json() if request.body_exists else None
    fake.seen.append(Seen(request.method, request.path, dict(request.headers), body))
    handler = fake.routes.get(f"{request.method} {request.path}")
    if handler is None:
        return web.json_response({"error": f"no route {request.method} {request.path}"}, status=404)
    return await handler(request)


async def launch(routes: dict[str, Handler]) -> tuple[FakeServer, web.AppRunner]:
    """Serve ``routes`` on a free loopback port; the caller cleans the runner up."""
    fake = FakeServer(dict(routes))
    app = web.Application()
    app[FAKE_KEY] = fake
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.base_url = f"http://127.0.0.1:{port}"
    return fake, runner


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------------------------
# Handlers


def reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Handler:
    """Answer with a JSON body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return handler


def sse(*writes: bytes, drop: bool = False) -> Handler:
    """An SSE answer written in the given pieces; ``drop`` aborts the connection after them."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in writes:
            await response.write(piece)
            await asyncio.sleep(0)
        if drop:
            assert request.transport is not None
            request.transport.abort()
        return response

    return handler


# --------------------------------------------------------------------------------------------
# Wire helpers


def sse_event(data: Any, *, space: bool = True) -> bytes:
    """One SSE event whose data is ``data`` as JSON."""
    return b"data:" + (b" " if space else b"") + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def awkward_pieces(whole: bytes) -> list[bytes]:
    """``whole`` cut mid-line, inside a UTF-8 character and between the two newlines ending an event."""
    cuts = {3, len(whole) // 3, len(whole) // 2, len(whole) - 5}
    if b"\xc3" in whole:
        cuts.add(whole.index(b"\xc3") + 1)
    if (blank := whole.find(b"\n\n", 20)) > 0:
        cuts.add(blank + 1)
    edges = sorted(c for c in cuts if 0 < c < len(whole))
    pieces = [whole[a:b] for a, b in zip([0, *edges], [*edges, len(whole)], strict=True)]
    assert b"".join(pieces) == whole
    return pieces


# OpenAI-compatible wire format (OpenAI, vLLM, Ollama, LM Studio): streamed completion chunks.
DONE = b"data: [DONE]\n\n"


def completion_chunk(text: str, finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return sse_event({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [choice]})


# --------------------------------------------------------------------------------------------
# Driving an adapter


def req(prompt: str = "hello", max_tokens: int = 16, seed: int | None = 7, **kw: Any) -> EngineRequest:
    return EngineRequest(kw.pop("task_id", "t1"), prompt, max_tokens, seed=seed, **kw)


async def batches(engine: Engine, request: EngineRequest) -> list[list[str]]:
    return [batch async for batch in engine.stream(request)]


async def collect(engine: Engine, request: EngineRequest) -> list[str]:
    return [t for batch in await batches(engine, request) for t in batch]


async def collect_until_error(engine: Engine, request: EngineRequest) -> tuple[list[str], EngineError]:
    received: list[str] = []

    async def consume() -> None:
        async for batch in engine.stream(request):
            assert batch, "no empty batches"
            received.extend(batch)

    with pytest.raises(EngineError) as info:
        await consume()
    return received, info.value


@dataclass(frozen=True)
class Expect:
    """One row of an adapter's error table, as the test sees it."""

    code: ErrorCode
    retriable: bool
    retry_after_ms: int | None
    tokens: tuple[str, ...] = ()
    says: str = ""


def check(got: list[str], err: EngineError, expect: Expect, engine_name: str) -> None:
    assert got == list(expect.tokens)
    assert (err.code, err.retriable, err.retry_after_ms) == (expect.code, expect.retriable, expect.retry_after_ms)
    assert err.engine == engine_name
    assert expect.says in err.message


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition that must come true soon (a generous bound, not a timing assertion)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never happened: {what}")
