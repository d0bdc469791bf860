"""OpenAIEngine: what is particular to it. The cases every adapter meets (stream, cancel, every row
of its error table, against recorded OpenAI responses) are in test_conformance.py.

Here: chat streams, the request and its key (sent, never leaked into an error), ``top_k`` only when
asked for, model discovery, ``fetch_info``, health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    check,
    collect,
    collect_until_error,
    completion_chunk,
    refused_url,
    reply,
    req,
    sse,
    sse_event,
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
def connect(started: Callable[[OpenAIEngine], Awaitable[OpenAIEngine]]) -> Connect:
    async def _connect(base_url: str, **options: Any) -> OpenAIEngine:
        return await started(OpenAIEngine(f"{base_url}/v1", **{"model": "gpt-test", "api_key_env": KEY_ENV, **options}))

    return _connect


def openai_error(status: int, message: str, kind: str, code: str | None = None, **headers: str) -> Handler:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return reply(body, status, {k.replace("_", "-"): v for k, v in headers.items()})


def chat_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return sse_event({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "choices": [choice]})


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
