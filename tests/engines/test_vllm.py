"""VLLMEngine over loopback, against a fake ``vllm serve``.

These engines cannot run on these machines; the fake follows the documented wire format of vLLM's
OpenAI-compatible server (``POST /v1/completions`` with ``"stream": true``, chunks
``data: {"choices": [{"text": ..., "finish_reason": ...}]}``, a usage chunk with ``"choices": []``,
``data: [DONE]``; ``GET /health``, ``GET /v1/models`` with ``max_model_len``, ``GET /version``),
including its error and overload responses: the error body
``{"object": "error", "message": ..., "type": "BadRequestError", "param": null, "code": 400}`` (and
the nested ``{"error": {...}}`` of newer releases), the in-stream ``data: {"error": {...}}`` event
followed by ``[DONE]``, 503 while the engine loads or sleeps, 429 from a rate limiter, 401 when
``--api-key`` is set.

Every row of the error table in ``llama_orch.engines.vllm``'s docstring is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llama_orch.engines import VLLMEngine
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
    usage_chunk,
)

COMPLETIONS = "POST /v1/completions"
MODEL = "google/gemma-3-270m"

Connect = Callable[..., Awaitable[VLLMEngine]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    engines: list[VLLMEngine] = []

    async def _connect(base_url: str, **options: Any) -> VLLMEngine:
        options.setdefault("model", MODEL)
        engine = VLLMEngine(base_url, **options)
        await engine.start()
        engines.append(engine)
        return engine

    yield _connect
    for engine in engines:
        await engine.aclose()


def vllm_error(status: int, message: str, kind: str, **headers: str) -> Handler:
    """vLLM's ErrorResponse, as its server answers a failed request."""
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    return reply(body, status, {k.replace("_", "-"): v for k, v in headers.items()})


def stream_error(message: str, kind: str = "InternalServerError", code: int = 500) -> bytes:
    """The event vLLM writes when generation fails after the stream began (then ``[DONE]``)."""
    return sse_event({"error": {"object": "error", "message": message, "type": kind, "param": None, "code": code}})


A, B = completion_chunk("a"), completion_chunk("b")
TOO_LONG = (
    "This model's maximum context length is 2048 tokens. However, you requested 4096 tokens "
    "(4000 in the messages, 96 in the completion). Please reduce the length of the messages or completion."
)


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        # connection refused -> POOL_UNAVAILABLE, retriable
        pytest.param(None, Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000), id="refused"),
        # HTTP 503 or 429 -> POOL_UNAVAILABLE, retriable (Retry-After honoured)
        pytest.param(
            vllm_error(503, "The engine is sleeping", "ServiceUnavailableError"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="The engine is sleeping"),
            id="503",
        ),
        pytest.param(
            vllm_error(429, "Too many requests", "RateLimitError", retry_after="3"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 3000),
            id="429",
        ),
        # HTTP 401 (--api-key) -> ENGINE_ERROR, not retriable
        pytest.param(
            reply({"error": "Unauthorized"}, 401),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="authentication"),
            id="401",
        ),
        # HTTP 400 BadRequestError, other 4xx -> ENGINE_ERROR, not retriable; the message is carried
        pytest.param(
            vllm_error(400, TOO_LONG, "BadRequestError"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="maximum context length is 2048"),
            id="400",
        ),
        pytest.param(
            reply(
                {
                    "error": {
                        "message": "top_k must be -1 or at least 1",
                        "type": "BadRequestError",
                        "param": None,
                        "code": 400,
                    }
                },
                400,
            ),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="top_k must be"),
            id="400-nested",
        ),
        pytest.param(
            vllm_error(404, "The model `other` does not exist.", "NotFoundError"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="does not exist"),
            id="404",
        ),
        # HTTP 5xx other than 503 -> ENGINE_ERROR, retriable
        pytest.param(
            vllm_error(500, "EngineCore encountered an issue", "InternalServerError"),
            Expect(ErrorCode.ENGINE_ERROR, True, None, says="EngineCore"),
            id="500",
        ),
        # connection dropped mid-stream -> WORKER_RESET, retriable
        pytest.param(sse(A, B, drop=True), Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b")), id="dropped"),
        # stream ended without data: [DONE] -> WORKER_RESET, retriable (a finish_reason is not the end)
        pytest.param(
            sse(A, B, completion_chunk("", "length"), usage_chunk()),
            Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b"), says="[DONE]"),
            id="no-done",
        ),
        pytest.param(sse(), Expect(ErrorCode.WORKER_RESET, True, 1000), id="empty-stream"),
        # data: {"error": {...}} inside the stream -> ENGINE_ERROR, not retriable
        pytest.param(
            sse(A + B + stream_error("CUDA error: an illegal memory access") + DONE),
            Expect(ErrorCode.ENGINE_ERROR, False, None, ("a", "b"), says="illegal memory access"),
            id="error-event",
        ),
        # malformed event -> ENGINE_ERROR, not retriable
        pytest.param(
            sse(A, b'data: {"choices": [\n\n'), Expect(ErrorCode.ENGINE_ERROR, False, None, ("a",)), id="not-json"
        ),
        pytest.param(
            sse(sse_event({"object": "text_completion"})), Expect(ErrorCode.ENGINE_ERROR, False, None), id="no-choices"
        ),
    ],
)
async def test_error_mapping_table(
    fake_server: StartFake, connect: Connect, handler: Handler | None, expect: Expect
) -> None:
    base = refused_url() if handler is None else (await fake_server({COMPLETIONS: handler})).base_url
    engine = await connect(base)
    got, err = await collect_until_error(engine, req())
    check(got, err, expect, "vllm")


async def test_stream_split_across_reads(fake_server: StartFake, connect: Connect) -> None:
    whole = (
        completion_chunk("def")
        + completion_chunk(" f(x):\n    return 'ünï'")
        + completion_chunk("", "length")
        + usage_chunk()
        + DONE
    )
    fake = await fake_server({COMPLETIONS: sse(*awkward_pieces(whole))})
    engine = await connect(fake.base_url)
    assert await collect(engine, req()) == ["def", " f(x):\n    return 'ünï'"]


async def test_events_in_one_read_come_as_one_batch(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETIONS: sse(A + B + completion_chunk("c", "length") + DONE)})
    engine = await connect(fake.base_url)
    assert await batches(engine, req()) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("request_kw", "sampling"),
    [
        pytest.param(
            {"seed": 42, "temperature": 0.8, "top_p": 0.95, "top_k": 50},
            {"seed": 42, "temperature": 0.8, "top_p": 0.95, "top_k": 50},
            id="sampled",
        ),
        # Greedy, top_k disabled as -1; every field sent so generation_config defaults never apply.
        pytest.param({"seed": 0}, {"seed": 0, "temperature": 0.0, "top_p": 1.0, "top_k": -1}, id="greedy"),
        pytest.param({"seed": None}, {"temperature": 0.0, "top_p": 1.0, "top_k": -1}, id="no-seed"),
    ],
)
async def test_request_payload(
    fake_server: StartFake, connect: Connect, request_kw: dict[str, Any], sampling: dict[str, Any]
) -> None:
    fake = await fake_server({COMPLETIONS: sse(completion_chunk("a", "stop"), DONE)})
    engine = await connect(fake.base_url)
    await collect(engine, req(prompt="p", max_tokens=12, **request_kw))
    (body,) = fake.bodies(COMPLETIONS)
    assert body == {"model": MODEL, "prompt": "p", "max_tokens": 12, "stream": True, **sampling}


async def test_closing_early_closes_the_connection(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETIONS: endless(completion_chunk("x"))})
    engine = await connect(fake.base_url)
    stream = engine.stream(req(max_tokens=100_000))
    assert await stream.__anext__()
    await stream.aclose()
    await eventually(lambda: fake.disconnects == 1, "the fake sees the client hang up")


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_health_describe_and_fetch_info(fake_server: StartFake, connect: Connect, suffix: str) -> None:
    models = {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "owned_by": "vllm", "root": MODEL, "max_model_len": 32768}],
    }
    fake = await fake_server(
        {"GET /health": reply(None), "GET /v1/models": reply(models), "GET /version": reply({"version": "0.10.1"})}
    )
    engine = await connect(fake.base_url + suffix, model=None, slots=8, ctx_max=2048)
    assert await engine.health() is True
    assert (engine.describe().engine, engine.describe().ctx_max, engine.describe().slots) == ("vllm", 2048, 8)
    info = await engine.fetch_info()
    assert (info.version, info.ctx_max, info.slots) == ("0.10.1", 32768, 8)
    assert engine.describe() == info
    assert engine.model == MODEL


@pytest.mark.parametrize("status", [500, 503])
async def test_health_false(fake_server: StartFake, connect: Connect, status: int) -> None:
    fake = await fake_server({"GET /health": reply(None, status)})
    engine = await connect(fake.base_url)
    assert await engine.health() is False


async def test_health_false_when_refused(connect: Connect) -> None:
    assert await (await connect(refused_url())).health() is False
