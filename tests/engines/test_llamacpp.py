"""LlamaCppEngine over loopback: against the mock engine's HTTP server, and against a tiny fake
llama-server for the wire-format cases the mock cannot produce.

Every row of the error-mapping table in ``llama_orch.engines.llamacpp``'s docstring is checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llama_orch.engines import EngineRequest, LlamaCppEngine, MockEngine, MockFaults, MockSettings, mock_tokens
from llama_orch.engines.mock_server import ENGINE_KEY, make_app
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode
from tests.conftest import free_port

StartMock = Callable[[MockSettings], Awaitable[str]]

FAST = MockSettings(tokens_per_s=None, first_token_ms=0)


def req(prompt: str = "hello", max_tokens: int = 16, seed: int | None = 7, **kw: Any) -> EngineRequest:
    return EngineRequest(kw.pop("task_id", "t1"), prompt, max_tokens, seed=seed, **kw)


async def collect(engine: LlamaCppEngine, request: EngineRequest) -> list[str]:
    return [t async for batch in engine.stream(request) for t in batch]


async def collect_until_error(engine: LlamaCppEngine, request: EngineRequest) -> tuple[list[str], EngineError]:
    received: list[str] = []

    async def consume() -> None:
        async for batch in engine.stream(request):
            assert batch, "no empty batches"
            received.extend(batch)

    with pytest.raises(EngineError) as info:
        await consume()
    return received, info.value


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[str], Awaitable[LlamaCppEngine]]]:
    engines: list[LlamaCppEngine] = []

    async def _connect(base_url: str) -> LlamaCppEngine:
        engine = LlamaCppEngine(base_url, slots=2, ctx_max=2048, version="b1234")
        await engine.start()
        engines.append(engine)
        return engine

    yield _connect
    for engine in engines:
        await engine.aclose()


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition that must come true soon (a generous bound, not a timing assertion)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never happened: {what}")


# --------------------------------------------------------------------------------------------
# Against the mock engine served over HTTP


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(req(), id="default"),
        pytest.param(req(prompt="def f(x):\n    return 'ünïcode' 🙂", seed=0, max_tokens=64), id="unicode"),
        pytest.param(req(max_tokens=1, seed=2**63 - 1), id="one-token"),
        pytest.param(req(max_tokens=500, seed=3), id="long"),
    ],
)
async def test_streams_the_same_tokens_as_mock_engine(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]], request_: EngineRequest
) -> None:
    engine = await connect(await mock_engine_server(FAST))
    in_process = [t async for batch in MockEngine(FAST).stream(request_) for t in batch]
    over_http = await collect(engine, request_)
    assert over_http == in_process == mock_tokens(request_)
    assert len(over_http) == request_.max_tokens


async def test_paced_stream_over_http(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    engine = await connect(await mock_engine_server(MockSettings(tokens_per_s=2000, first_token_ms=1)))
    assert await collect(engine, req(max_tokens=40)) == mock_tokens(req(max_tokens=40))


async def test_seedless_requests_are_not_reproducible_over_http(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    # Without a seed the engine picks its own (best_effort): two identical requests may differ,
    # and with the mock they always do. A seed is what makes output reproducible.
    engine = await connect(await mock_engine_server(FAST))
    request_ = req(seed=None, max_tokens=40)
    assert await collect(engine, request_) != await collect(engine, request_)


async def test_health_and_props(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    engine = await connect(await mock_engine_server(MockSettings(slots=3, ctx_max=1024)))
    assert await engine.health() is True
    props = await engine.props()
    assert props["default_generation_settings"]["n_ctx"] == 1024
    assert props["total_slots"] == 3
    assert props["build_info"] == "mock-1"
    info = engine.describe()
    assert (info.engine, info.version, info.slots, info.ctx_max) == ("llamacpp", "b1234", 2, 2048)


async def test_used_before_start_is_a_programming_error() -> None:
    engine = LlamaCppEngine("http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        await engine.health()


async def test_injected_reset_is_retriable_worker_reset(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    settings = FAST.model_copy(update={"faults": MockFaults(reset_after_tokens=3)})
    engine = await connect(await mock_engine_server(settings))
    got, err = await collect_until_error(engine, req())
    assert got == mock_tokens(req())[:3]
    assert err.code is ErrorCode.WORKER_RESET
    assert err.retriable is True
    assert err.engine == "llamacpp"
    assert isinstance(err.__cause__, aiohttp.ClientError | ConnectionError)


async def test_mid_stream_engine_error(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    settings = FAST.model_copy(update={"faults": MockFaults(error_after_tokens=4)})
    engine = await connect(await mock_engine_server(settings))
    got, err = await collect_until_error(engine, req())
    # Every token sent before the error is delivered, however the reads split.
    assert got == mock_tokens(req())[:4]
    assert err.code is ErrorCode.ENGINE_ERROR
    assert err.retriable is False
    assert "injected error after 4 tokens" in err.message


async def test_tokens_before_a_mid_stream_error_are_delivered(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    # Unpaced: the 4 tokens and the error event are written back to back and read together.
    settings = FAST.model_copy(update={"faults": MockFaults(error_after_tokens=4)})
    engine = await connect(await mock_engine_server(settings))
    got, err = await collect_until_error(engine, req())
    assert err.code is ErrorCode.ENGINE_ERROR
    assert got == mock_tokens(req())[:4]


async def test_fault_trigger_over_http(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    settings = FAST.model_copy(update={"faults": MockFaults(trigger="BOOM", error_after_tokens=0)})
    engine = await connect(await mock_engine_server(settings))
    assert await collect(engine, req(prompt="calm")) == mock_tokens(req(prompt="calm"))
    got, err = await collect_until_error(engine, req(prompt="BOOM"))
    assert (got, err.code) == ([], ErrorCode.ENGINE_ERROR)


async def test_connection_refused_is_retriable_pool_unavailable(
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
) -> None:
    engine = await connect(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    got, err = await collect_until_error(engine, req())
    assert got == []
    assert err.code is ErrorCode.POOL_UNAVAILABLE
    assert err.retriable is True
    assert err.retry_after_ms == 1000
    assert isinstance(err.__cause__, aiohttp.ClientConnectorError)
    assert await engine.health() is False
    with pytest.raises(EngineError) as info:
        await engine.props()
    assert (info.value.code, info.value.retriable) == (ErrorCode.POOL_UNAVAILABLE, True)


async def test_slots_exhausted_is_retriable_pool_unavailable(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    # One slot; a long paced stream holds it.
    engine = await connect(await mock_engine_server(MockSettings(tokens_per_s=50, first_token_ms=0, slots=1)))
    holder = engine.stream(req(max_tokens=100_000))
    assert await holder.__anext__()
    got, err = await collect_until_error(engine, req(prompt="second"))
    assert got == []
    assert err.code is ErrorCode.POOL_UNAVAILABLE
    assert err.retriable is True
    assert "no slot available" in err.message
    await holder.aclose()


async def test_concurrent_requests_beyond_slots(
    mock_engine_server: StartMock, connect: Callable[[str], Awaitable[LlamaCppEngine]]
) -> None:
    engine = await connect(await mock_engine_server(MockSettings(tokens_per_s=50, first_token_ms=0, slots=1)))
    streams = [engine.stream(req(prompt=f"p{i}", max_tokens=100_000)) for i in range(3)]
    results = await asyncio.gather(*(s.__anext__() for s in streams), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 2, results
    assert all(isinstance(e, EngineError) and e.code is ErrorCode.POOL_UNAVAILABLE for e in errors)
    for s in streams:
        await s.aclose()


async def test_closing_early_closes_the_connection(connect: Callable[[str], Awaitable[LlamaCppEngine]]) -> None:
    """aclose() after the first batch drops the connection, so the engine stops that stream."""
    app = make_app(MockSettings(tokens_per_s=100, first_token_ms=0, slots=1))
    mock = app[ENGINE_KEY]
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        engine = await connect(f"http://127.0.0.1:{port}")
        # At 100 tokens/s this stream would run for over 15 minutes if nobody stopped it.
        stream = engine.stream(req(max_tokens=100_000))
        assert await stream.__anext__()
        assert mock.active == 1
        await stream.aclose()
        await eventually(lambda: mock.active == 0, "the mock engine's stream ends after the client closes")
        assert mock.started_streams == 1
        # The slot is free again: a new task runs to completion.
        assert await collect(engine, req(max_tokens=3)) == mock_tokens(req(max_tokens=3))
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------------------------
# Against a fake llama-server
#
# The fake follows llama-server's documented /completion streaming format (SSE lines
# ``data: {"content": "...", "stop": false}``, a final event with ``"stop": true``) and its error
# format, e.g. ``{"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}``.

Completion = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeLlamaServer:
    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def error_body(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "type": kind}}, status=status)


def event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def token(text: str) -> bytes:
    return event({"content": text, "stop": False})


FINAL = event({"content": "", "stop": True, "stop_type": "limit", "tokens_predicted": 2})


async def sse(request: web.Request, *writes: bytes, drop: bool = False) -> web.StreamResponse:
    """Answer with an SSE stream written in the given pieces; ``drop`` aborts the connection after."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for piece in writes:
        await response.write(piece)
        await asyncio.sleep(0)
    if drop:
        assert request.transport is not None
        request.transport.abort()
    return response


@pytest.fixture
async def fake_llama_server() -> AsyncIterator[Callable[..., Awaitable[FakeLlamaServer]]]:
    runners: list[web.AppRunner] = []

    async def _start(completion: Completion, *, health_status: int = 200) -> FakeLlamaServer:
        server = FakeLlamaServer("")

        async def _completion(request: web.Request) -> web.StreamResponse:
            server.requests.append(await request.json())
            return await completion(request)

        async def _health(request: web.Request) -> web.Response:
            if health_status == 200:
                return web.json_response({"status": "ok"})
            return error_body(health_status, "Loading model", "unavailable_error")

        app = web.Application()
        app.router.add_post("/completion", _completion)
        app.router.add_get("/health", _health)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        server.base_url = f"http://127.0.0.1:{port}"
        return server

    yield _start
    for runner in reversed(runners):
        await runner.cleanup()


def status(code: int, message: str, kind: str) -> Completion:
    async def handler(request: web.Request) -> web.StreamResponse:
        return error_body(code, message, kind)

    return handler


def stream_of(*writes: bytes, drop: bool = False) -> Completion:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await sse(request, *writes, drop=drop)

    return handler


@pytest.mark.parametrize(
    ("completion", "tokens_before", "code", "retriable"),
    [
        # HTTP 503 or 429 (loading, no slot) -> POOL_UNAVAILABLE, retriable
        pytest.param(status(503, "Loading model", "unavailable_error"), 0, ErrorCode.POOL_UNAVAILABLE, True, id="503"),
        pytest.param(
            status(429, "Too many requests", "unavailable_error"), 0, ErrorCode.POOL_UNAVAILABLE, True, id="429"
        ),
        # other HTTP 5xx -> ENGINE_ERROR, retriable
        pytest.param(status(500, "boom", "server_error"), 0, ErrorCode.ENGINE_ERROR, True, id="500"),
        pytest.param(status(502, "bad gateway", "server_error"), 0, ErrorCode.ENGINE_ERROR, True, id="502"),
        # HTTP 4xx -> ENGINE_ERROR, not retriable
        pytest.param(
            status(400, "the request exceeds the context size", "invalid_request_error"),
            0,
            ErrorCode.ENGINE_ERROR,
            False,
            id="400",
        ),
        pytest.param(status(404, "File Not Found", "not_found_error"), 0, ErrorCode.ENGINE_ERROR, False, id="404"),
        # connection dropped mid-stream -> WORKER_RESET, retriable
        pytest.param(stream_of(token("a"), token("b"), drop=True), 2, ErrorCode.WORKER_RESET, True, id="dropped"),
        # stream ended without ``stop`` -> WORKER_RESET, retriable
        pytest.param(stream_of(token("a"), token("b")), 2, ErrorCode.WORKER_RESET, True, id="no-stop"),
        pytest.param(stream_of(), 0, ErrorCode.WORKER_RESET, True, id="empty-stream"),
        # error object inside the stream -> ENGINE_ERROR, not retriable
        pytest.param(
            stream_of(event({"error": {"code": 500, "message": "kv cache full", "type": "server_error"}})),
            0,
            ErrorCode.ENGINE_ERROR,
            False,
            id="error-event",
        ),
        pytest.param(
            stream_of(event({"error": "plain string error"})), 0, ErrorCode.ENGINE_ERROR, False, id="error-str"
        ),
        # not in the table: a line that is not JSON is reported as an engine error
        pytest.param(stream_of(b"data: {not json\n\n"), 0, ErrorCode.ENGINE_ERROR, False, id="malformed-line"),
    ],
)
async def test_error_mapping_table(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
    completion: Completion,
    tokens_before: int,
    code: ErrorCode,
    retriable: bool,
) -> None:
    server = await fake_llama_server(completion)
    engine = await connect(server.base_url)
    got, err = await collect_until_error(engine, req())
    assert got == ["a", "b"][:tokens_before]
    assert err.code is code
    assert err.retriable is retriable
    assert err.engine == "llamacpp"


async def test_error_messages_carry_the_engine_text(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
) -> None:
    server = await fake_llama_server(status(503, "Loading model", "unavailable_error"))
    engine = await connect(server.base_url)
    _, err = await collect_until_error(engine, req())
    assert "Loading model" in err.message
    assert err.retry_after_ms == 1000
    server = await fake_llama_server(
        stream_of(event({"error": {"code": 500, "message": "kv cache full", "type": "server_error"}}))
    )
    engine = await connect(server.base_url)
    _, err = await collect_until_error(engine, req())
    assert "kv cache full" in err.message


@pytest.mark.parametrize("line", [b"data: 42\n\n", b'data: "x"\n\n', b"data: null\n\n", b"data: [1]\n\n"])
async def test_non_object_data_line_is_an_engine_error(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
    line: bytes,
) -> None:
    server = await fake_llama_server(stream_of(line))
    engine = await connect(server.base_url)
    got, err = await collect_until_error(engine, req())
    assert got == []
    assert err.code is ErrorCode.ENGINE_ERROR


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(event({"error": {"code": 500, "message": "kv cache full", "type": "server_error"}}), id="error"),
        pytest.param(b"data: {not json\n\n", id="malformed"),
    ],
)
async def test_tokens_in_the_same_read_as_an_error_are_delivered(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
    failure: bytes,
) -> None:
    server = await fake_llama_server(stream_of(token("a") + token("b") + failure))  # one write
    engine = await connect(server.base_url)
    got, err = await collect_until_error(engine, req())
    assert err.code is ErrorCode.ENGINE_ERROR
    assert got == ["a", "b"]


async def test_events_split_across_reads_and_stop(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
) -> None:
    whole = (
        b": keep-alive comment\n\n"
        + token("Hel")
        + b'data:{"content":"lo","stop":false}\n\n'  # no space after the colon
        + token(" wörld\n")
        + event({"content": "!", "stop": True, "tokens_predicted": 4})
        + token("after stop: never read")
    )
    # Cut the bytes into awkward pieces: mid-line, mid-UTF-8 character, between "\n" and "\n".
    cuts = sorted({3, 20, 21, 40, whole.index(b"\xc3") + 1, whole.index(b"\n\n", 60) + 1, len(whole) - 5})
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    assert b"".join(pieces) == whole
    server = await fake_llama_server(stream_of(*pieces))
    engine = await connect(server.base_url)
    assert await collect(engine, req()) == ["Hel", "lo", " wörld\n", "!"]


async def test_request_payload(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
) -> None:
    server = await fake_llama_server(stream_of(token("a"), token("b"), FINAL))
    engine = await connect(server.base_url)
    assert await collect(engine, req(prompt="p1", max_tokens=2, seed=5)) == ["a", "b"]
    assert await collect(engine, req(prompt="p2", max_tokens=9, seed=None)) == ["a", "b"]
    first, second = server.requests
    assert first["prompt"] == "p1"
    assert first["n_predict"] == 2
    assert first["stream"] is True
    assert first["seed"] == 5
    assert second["n_predict"] == 9
    assert "seed" not in second


async def test_strict_turns_the_prompt_cache_off(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
) -> None:
    # llama.cpp's logits differ between a prompt evaluated in one batch and one resumed from its
    # cache, so a strict task must not reuse a cached prefix; best-effort tasks keep the speed-up.
    server = await fake_llama_server(stream_of(token("a"), FINAL))
    engine = await connect(server.base_url)
    await collect(engine, req(determinism=Determinism.strict))
    await collect(engine, req(determinism=Determinism.best_effort))
    assert [r["cache_prompt"] for r in server.requests] == [False, True]


async def test_health_false_while_loading(
    fake_llama_server: Callable[..., Awaitable[FakeLlamaServer]],
    connect: Callable[[str], Awaitable[LlamaCppEngine]],
) -> None:
    server = await fake_llama_server(stream_of(FINAL), health_status=503)
    engine = await connect(server.base_url)
    assert await engine.health() is False
