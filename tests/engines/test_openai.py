"""OpenAIEngine over loopback, against a fake OpenAI-compatible server.

These engines cannot run on these machines; the fake follows the documented wire format of the
OpenAI API (``POST /v1/completions`` and ``/v1/chat/completions`` with ``"stream": true``, chunks
``data: {"choices": [{"text": ...}]}`` or ``{"choices": [{"delta": {"content": ...}}]}`` ending in
``data: [DONE]``, ``GET /v1/models``), including its error and overload responses: the error body
``{"error": {"message", "type", "param", "code"}}``, 401 ``invalid_api_key``, 429
``rate_limit_exceeded`` with ``Retry-After`` / ``retry-after-ms``, 429 ``insufficient_quota``, 5xx.

Every row of the error table in ``llama_orch.engines.openai``'s docstring is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from llama_orch.engines import OpenAIEngine
from llama_orch.errors import ConfigError, EngineError
from llama_orch_api import ErrorCode
from tests.engines._fake import (
    DONE,
    Expect,
    Handler,
    StartFake,
    awkward_pieces,
    batches,
    check,
    collect,
    collect_until_error,
    completion_chunk,
    endless,
    eventually,
    refused_url,
    reply,
    req,
    sse,
    sse_event,
    text_reply,
    usage_chunk,
)

KEY_ENV = "LLORCH_TEST_OPENAI_KEY"
KEY = "sk-test-5EcReT-0123456789"
COMPLETIONS = "POST /v1/completions"
CHAT = "POST /v1/chat/completions"
MODELS = {"object": "list", "data": [{"id": "gpt-test", "object": "model", "created": 1, "owned_by": "system"}]}

Connect = Callable[..., Awaitable[OpenAIEngine]]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    engines: list[OpenAIEngine] = []

    async def _connect(base_url: str, **options: Any) -> OpenAIEngine:
        options.setdefault("model", "gpt-test")
        options.setdefault("api_key_env", KEY_ENV)
        engine = OpenAIEngine(f"{base_url}/v1", **options)
        await engine.start()
        engines.append(engine)
        return engine

    yield _connect
    for engine in engines:
        await engine.aclose()


def openai_error(status: int, message: str, kind: str, code: str | None = None, **headers: str) -> Handler:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return reply(body, status, {k.replace("_", "-"): v for k, v in headers.items()})


def chat_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return sse_event({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "choices": [choice]})


A, B = completion_chunk("a"), completion_chunk("b")
REFUSED = None  # the row where nothing listens


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        # connection refused -> POOL_UNAVAILABLE, retriable
        pytest.param(REFUSED, Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="unreachable"), id="refused"),
        # 429 (rate limit) or 503 -> POOL_UNAVAILABLE, retriable after Retry-After / retry-after-ms
        pytest.param(
            openai_error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", retry_after="7"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 7000, says="Rate limit reached"),
            id="429-retry-after",
        ),
        pytest.param(
            openai_error(429, "Rate limit reached", "requests", "rate_limit_exceeded", retry_after_ms="250"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 250),
            id="429-retry-after-ms",
        ),
        pytest.param(
            openai_error(429, "Rate limit reached", "requests", "rate_limit_exceeded"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000),
            id="429-no-header",
        ),
        pytest.param(
            openai_error(503, "The engine is currently overloaded", "server_error", retry_after="2"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 2000, says="overloaded"),
            id="503",
        ),
        # 429 insufficient_quota -> ENGINE_ERROR, not retriable
        pytest.param(
            openai_error(429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="quota"),
            id="429-quota",
        ),
        # 401 or 403 -> ENGINE_ERROR, not retriable, "authentication failed"
        pytest.param(
            openai_error(
                401, "Incorrect API key provided: sk-test-***6789.", "invalid_request_error", "invalid_api_key"
            ),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="authentication with openai"),
            id="401",
        ),
        pytest.param(
            openai_error(403, "Project does not have access", "invalid_request_error"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="failed (403)"),
            id="403",
        ),
        # other 4xx -> ENGINE_ERROR, not retriable
        pytest.param(
            openai_error(400, "max_tokens is too large", "invalid_request_error"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="max_tokens is too large"),
            id="400",
        ),
        pytest.param(
            openai_error(404, "The model `gpt-test` does not exist", "invalid_request_error", "model_not_found"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="does not exist"),
            id="404",
        ),
        # other 5xx -> ENGINE_ERROR, retriable
        pytest.param(
            openai_error(500, "The server had an error", "server_error"),
            Expect(ErrorCode.ENGINE_ERROR, True, None, says="answered 500"),
            id="500",
        ),
        pytest.param(
            text_reply("<html>502 Bad Gateway</html>", 502),
            Expect(ErrorCode.ENGINE_ERROR, True, None, says="502 Bad Gateway"),
            id="502-proxy-page",
        ),
        # connection dropped mid-stream -> WORKER_RESET, retriable
        pytest.param(sse(A, B, drop=True), Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b")), id="dropped"),
        # stream ended without [DONE] -> WORKER_RESET, retriable
        pytest.param(
            sse(A, B, completion_chunk("", "length")),
            Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b"), says="[DONE]"),
            id="no-done",
        ),
        pytest.param(sse(), Expect(ErrorCode.WORKER_RESET, True, 1000), id="empty-stream"),
        # error event inside the stream -> ENGINE_ERROR, not retriable (tokens before it delivered)
        pytest.param(
            sse(A + B + sse_event({"error": {"message": "context overflow", "type": "server_error"}}) + DONE),
            Expect(ErrorCode.ENGINE_ERROR, False, None, ("a", "b"), says="context overflow"),
            id="error-event",
        ),
        # malformed event -> ENGINE_ERROR, not retriable
        pytest.param(sse(b"data: {not json\n\n"), Expect(ErrorCode.ENGINE_ERROR, False, None), id="not-json"),
        pytest.param(sse(b"data: [1, 2]\n\n"), Expect(ErrorCode.ENGINE_ERROR, False, None), id="not-object"),
        pytest.param(
            sse(A, sse_event({"id": "x", "object": "text_completion"})),
            Expect(ErrorCode.ENGINE_ERROR, False, None, ("a",), says="malformed"),
            id="no-choices",
        ),
        pytest.param(
            sse(sse_event({"choices": [{"index": 0, "text": 42}]})),
            Expect(ErrorCode.ENGINE_ERROR, False, None),
            id="text-not-string",
        ),
        pytest.param(sse(sse_event({"choices": ["a"]})), Expect(ErrorCode.ENGINE_ERROR, False, None), id="bad-choice"),
    ],
)
async def test_error_mapping_table(
    fake_server: StartFake, connect: Connect, handler: Handler | None, expect: Expect
) -> None:
    base = refused_url() if handler is None else (await fake_server({COMPLETIONS: handler})).base_url
    engine = await connect(base)
    got, err = await collect_until_error(engine, req())
    check(got, err, expect, "openai")


async def test_stream_split_across_reads(fake_server: StartFake, connect: Connect) -> None:
    whole = (
        b": keep-alive\n\n"
        + completion_chunk("Hel")
        + completion_chunk("lo w\u00f6rld")
        + completion_chunk("!\n", "length")
        + usage_chunk()
        + DONE
        + completion_chunk("after [DONE]: never read")
    )
    fake = await fake_server({COMPLETIONS: sse(*awkward_pieces(whole))})
    engine = await connect(fake.base_url)
    assert await collect(engine, req()) == ["Hel", "lo w\u00f6rld", "!\n"]


async def test_events_in_one_read_come_as_one_batch(fake_server: StartFake, connect: Connect) -> None:
    one_write = completion_chunk("a") + completion_chunk("b") + completion_chunk("c", "stop") + DONE
    fake = await fake_server({COMPLETIONS: sse(one_write)})
    engine = await connect(fake.base_url)
    assert await batches(engine, req()) == [["a", "b", "c"]]


async def test_chat_stream(fake_server: StartFake, connect: Connect) -> None:
    stream = sse(
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"content": "Hi"}),
        chat_chunk({"content": " there"}),
        chat_chunk({}, "stop"),
        DONE,
    )
    fake = await fake_server({CHAT: stream})
    engine = await connect(fake.base_url, chat=True)
    assert await collect(engine, req(prompt="greet me", max_tokens=5, seed=3)) == ["Hi", " there"]
    (body,) = fake.bodies(CHAT)
    assert body["messages"] == [{"role": "user", "content": "greet me"}]
    assert (body["model"], body["max_tokens"], body["seed"], body["stream"]) == ("gpt-test", 5, 3, True)
    assert "prompt" not in body


async def test_request_payload_and_key(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETIONS: sse(completion_chunk("a", "stop"), DONE)})
    engine = await connect(fake.base_url)
    await collect(engine, req(prompt="p1", max_tokens=9, seed=42, temperature=0.7, top_p=0.9, top_k=40))
    await collect(engine, req(prompt="p2", seed=None))
    first, second = fake.bodies(COMPLETIONS)
    assert first == {
        "model": "gpt-test",
        "prompt": "p1",
        "max_tokens": 9,
        "stream": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 42,
    }
    assert "seed" not in second  # no seed: the server picks one
    assert all(s.headers["Authorization"] == f"Bearer {KEY}" for s in fake.seen)


async def test_top_k_only_when_asked_for(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETIONS: sse(completion_chunk("a", "stop"), DONE)})
    engine = await connect(fake.base_url, send_top_k=True)
    await collect(engine, req(top_k=40))
    await collect(engine, req(top_k=0))
    first, second = fake.bodies(COMPLETIONS)
    assert first["top_k"] == 40
    assert "top_k" not in second


async def test_model_is_discovered_once_when_not_given(fake_server: StartFake, connect: Connect) -> None:
    models = {"object": "list", "data": [{"id": "llama3.2:1b"}, {"id": "gemma3:270m"}]}
    fake = await fake_server({"GET /v1/models": reply(models), COMPLETIONS: sse(completion_chunk("a"), DONE)})
    engine = await connect(fake.base_url, model=None)
    await collect(engine, req())
    await collect(engine, req())
    assert [body["model"] for body in fake.bodies(COMPLETIONS)] == ["llama3.2:1b", "llama3.2:1b"]
    assert fake.count("GET /v1/models") == 1


async def test_no_model_served_is_an_engine_error(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({"GET /v1/models": reply({"object": "list", "data": []})})
    engine = await connect(fake.base_url, model=None)
    got, err = await collect_until_error(engine, req())
    check(got, err, Expect(ErrorCode.ENGINE_ERROR, False, None, says="serves no model"), "openai")


async def test_closing_early_closes_the_connection(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETIONS: endless(completion_chunk("x"))})
    engine = await connect(fake.base_url)
    stream = engine.stream(req(max_tokens=100_000))
    assert await stream.__anext__()
    await stream.aclose()
    await eventually(lambda: fake.disconnects == 1, "the fake sees the client hang up")
    assert fake.count(COMPLETIONS) == 1


async def test_health_describe_and_fetch_info(fake_server: StartFake, connect: Connect) -> None:
    models = {"object": "list", "data": [{"id": "other"}, {"id": "gpt-test", "max_model_len": 8192}]}
    fake = await fake_server({"GET /v1/models": reply(models)})
    engine = await connect(fake.base_url, slots=4, ctx_max=2048, version="v1")
    assert await engine.health() is True
    info = engine.describe()
    assert (info.engine, info.version, info.slots, info.ctx_max) == ("openai", "v1", 4, 2048)
    assert (await engine.fetch_info()).ctx_max == 8192
    assert engine.describe().ctx_max == 8192
    assert fake.seen[0].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    "models",
    [
        pytest.param(openai_error(401, "Incorrect API key", "invalid_request_error", "invalid_api_key"), id="401"),
        pytest.param(openai_error(503, "busy", "server_error"), id="503"),
    ],
)
async def test_health_false(fake_server: StartFake, connect: Connect, models: Handler) -> None:
    fake = await fake_server({"GET /v1/models": models})
    engine = await connect(fake.base_url)
    assert await engine.health() is False


async def test_health_false_when_refused(connect: Connect) -> None:
    assert await (await connect(refused_url())).health() is False


async def test_fetch_info_errors(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({"GET /v1/models": reply(MODELS)})
    engine = await connect(fake.base_url, model="not-there")
    with pytest.raises(EngineError, match="does not serve model 'not-there'") as info:
        await engine.fetch_info()
    assert (info.value.code, info.value.retriable) == (ErrorCode.ENGINE_ERROR, False)
    engine = await connect(refused_url())
    with pytest.raises(EngineError) as info:
        await engine.fetch_info()
    assert (info.value.code, info.value.retriable) == (ErrorCode.POOL_UNAVAILABLE, True)


async def test_missing_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    engine = OpenAIEngine("http://127.0.0.1:1/v1", model="m", api_key_env=KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        await engine.start()


async def test_no_key_sends_no_authorization(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETIONS: sse(completion_chunk("a"), DONE)})
    engine = await connect(fake.base_url, api_key_env=None)
    assert await collect(engine, req()) == ["a"]
    assert "Authorization" not in fake.seen[0].headers


async def echo_key(request: web.Request) -> web.StreamResponse:
    """A misbehaving server that quotes the credentials back in its error."""
    return web.json_response({"error": {"message": f"bad request from {request.headers['Authorization']}"}}, status=400)


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(echo_key, id="400-echo"),
        pytest.param(openai_error(401, f"Incorrect API key provided: {KEY}", "invalid_request_error"), id="401"),
        pytest.param(sse(sse_event({"error": {"message": f"key {KEY} revoked"}})), id="error-event"),
        pytest.param(sse(f"data: {{{KEY}\n\n".encode()), id="malformed"),
    ],
)
async def test_the_key_never_reaches_an_error(fake_server: StartFake, connect: Connect, handler: Handler) -> None:
    fake = await fake_server({COMPLETIONS: handler})
    engine = await connect(fake.base_url)
    _, err = await collect_until_error(engine, req())
    assert KEY not in err.message
    assert KEY not in repr(err.envelope())


def test_used_before_start_is_a_programming_error() -> None:
    engine = OpenAIEngine("http://127.0.0.1:1/v1", model="m")
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        engine.session  # noqa: B018
