"""TGIEngine over loopback, against a fake Text Generation Inference server.

These engines cannot run on these machines; the fake follows the documented wire format of Hugging
Face Text Generation Inference (``POST /generate_stream`` with ``{"inputs", "parameters"}``; events
``data:{"index", "token": {"id", "text", "logprob", "special"}, "generated_text": null, "details":
null}`` ending with the event whose ``generated_text`` is set; keep-alive comments; ``GET /health``;
``GET /info``), including its error and overload responses: ``{"error": ..., "error_type":
"overloaded" | "validation" | "generation" | "incomplete_generation"}`` answered with HTTP
429/422/424/500, and the same object as an event inside a stream that already answered 200.

Every row of the error table in ``llama_orch.engines.tgi``'s docstring is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llama_orch.engines import TGIEngine
from llama_orch_api import ErrorCode
from tests.engines._fake import (
    Expect,
    Handler,
    StartFake,
    awkward_pieces,
    batches,
    check,
    collect,
    collect_until_error,
    endless,
    eventually,
    refused_url,
    reply,
    req,
    sse,
    sse_event,
    text_reply,
)

GENERATE = "POST /generate_stream"

Connect = Callable[..., Awaitable[TGIEngine]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    engines: list[TGIEngine] = []

    async def _connect(base_url: str, **options: Any) -> TGIEngine:
        engine = TGIEngine(base_url, **options)
        await engine.start()
        engines.append(engine)
        return engine

    yield _connect
    for engine in engines:
        await engine.aclose()


_ids = iter(range(1_000_000))


def token(text: str, *, special: bool = False, generated_text: str | None = None) -> bytes:
    details = {"finish_reason": "eos_token", "generated_tokens": 3, "seed": None} if generated_text else None
    event = {
        "index": next(_ids),
        "token": {"id": 100 + len(text), "text": text, "logprob": -0.25, "special": special},
        "generated_text": generated_text,
        "details": details,
        "top_tokens": None,
    }
    return sse_event(event, space=False)  # TGI (axum) writes "data:" with no space


def final(text: str = "</s>", generated_text: str = "ab") -> bytes:
    return token(text, special=True, generated_text=generated_text)


def tgi_error(message: str, error_type: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def status(code: int, message: str, error_type: str, **headers: str) -> Handler:
    return reply(tgi_error(message, error_type), code, {k.replace("_", "-"): v for k, v in headers.items()})


def in_stream(message: str, error_type: str) -> bytes:
    return sse_event(tgi_error(message, error_type), space=False)


A, B = token("a"), token("b")


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        # connection refused -> POOL_UNAVAILABLE, retriable
        pytest.param(None, Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000), id="refused"),
        # overloaded (429 or in the stream), HTTP 503 -> POOL_UNAVAILABLE, retriable
        pytest.param(
            status(429, "Model is overloaded", "overloaded", retry_after="4"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 4000, says="Model is overloaded"),
            id="429-overloaded",
        ),
        pytest.param(
            sse(in_stream("Model is overloaded", "overloaded")),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="overloaded"),
            id="stream-overloaded",
        ),
        pytest.param(
            text_reply("shard not ready", 503, "text/plain"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="shard not ready"),
            id="503",
        ),
        # validation (422 or in the stream) -> ENGINE_ERROR, not retriable
        pytest.param(
            status(422, "`inputs` tokens + `max_new_tokens` must be <= 4096", "validation"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="must be <= 4096"),
            id="422-validation",
        ),
        pytest.param(
            sse(in_stream("`temperature` must be strictly positive", "validation")),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="strictly positive"),
            id="stream-validation",
        ),
        # generation (424 or in the stream) -> ENGINE_ERROR, retriable
        pytest.param(
            status(424, "Request failed during generation: CUDA out of memory", "generation"),
            Expect(ErrorCode.ENGINE_ERROR, True, None, says="CUDA out of memory"),
            id="424-generation",
        ),
        pytest.param(
            sse(A + B + in_stream("Request failed during generation", "generation")),
            Expect(ErrorCode.ENGINE_ERROR, True, None, ("a", "b"), says="failed during generation"),
            id="stream-generation",
        ),
        # incomplete_generation (500 or in the stream) -> WORKER_RESET, retriable
        pytest.param(
            status(500, "Incomplete generation", "incomplete_generation"),
            Expect(ErrorCode.WORKER_RESET, True, 1000, says="Incomplete generation"),
            id="500-incomplete",
        ),
        pytest.param(
            sse(A, in_stream("Incomplete generation", "incomplete_generation")),
            Expect(ErrorCode.WORKER_RESET, True, 1000, ("a",)),
            id="stream-incomplete",
        ),
        # other HTTP 4xx -> ENGINE_ERROR, not retriable; other 5xx -> ENGINE_ERROR, retriable
        pytest.param(text_reply("Not Found", 404, "text/plain"), Expect(ErrorCode.ENGINE_ERROR, False, None), id="404"),
        pytest.param(
            reply({"error": "upstream gone"}, 502),
            Expect(ErrorCode.ENGINE_ERROR, True, None, says="upstream"),
            id="502",
        ),
        # connection dropped mid-stream -> WORKER_RESET, retriable
        pytest.param(sse(A, B, drop=True), Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b")), id="dropped"),
        # stream ended without the final event -> WORKER_RESET, retriable
        pytest.param(
            sse(A, B), Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b"), says="generated_text"), id="no-final"
        ),
        pytest.param(sse(b":\n\n"), Expect(ErrorCode.WORKER_RESET, True, 1000), id="only-keep-alive"),
        # other error event in the stream -> ENGINE_ERROR, not retriable
        pytest.param(
            sse(in_stream("best_of != 1 is not allowed for this endpoint", "")),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="best_of"),
            id="stream-untyped-error",
        ),
        pytest.param(
            sse(sse_event({"error": "odd", "error_type": ["overloaded"]})),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="odd"),
            id="stream-odd-error-type",
        ),
        pytest.param(
            reply({"error": "odd", "error_type": {"k": 1}}, 429),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="odd"),
            id="429-odd-error-type",
        ),
        # malformed event -> ENGINE_ERROR, not retriable
        pytest.param(sse(A, b"data:{\n\n"), Expect(ErrorCode.ENGINE_ERROR, False, None, ("a",)), id="not-json"),
        pytest.param(
            sse(sse_event({"generated_text": None})), Expect(ErrorCode.ENGINE_ERROR, False, None), id="no-token"
        ),
        pytest.param(
            sse(sse_event({"token": {"id": 1, "text": None}})),
            Expect(ErrorCode.ENGINE_ERROR, False, None),
            id="no-text",
        ),
    ],
)
async def test_error_mapping_table(
    fake_server: StartFake, connect: Connect, handler: Handler | None, expect: Expect
) -> None:
    base = refused_url() if handler is None else (await fake_server({GENERATE: handler})).base_url
    engine = await connect(base)
    got, err = await collect_until_error(engine, req())
    check(got, err, expect, "tgi")


async def test_stream_split_across_reads_and_special_tokens(fake_server: StartFake, connect: Connect) -> None:
    whole = (
        b":\n\n"  # axum's keep-alive
        + token("<start_of_turn>", special=True)
        + token("Hel")
        + token("lo wörld")
        + final("<eos>", "Hello wörld")
        + token("after the final event: never read")
    )
    fake = await fake_server({GENERATE: sse(*awkward_pieces(whole))})
    engine = await connect(fake.base_url)
    assert await collect(engine, req()) == ["Hel", "lo wörld"]


async def test_events_in_one_read_come_as_one_batch(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({GENERATE: sse(A + B + token("c") + final())})
    engine = await connect(fake.base_url)
    assert await batches(engine, req()) == [["a", "b", "c"]]


async def test_a_final_token_that_is_text_is_delivered(fake_server: StartFake, connect: Connect) -> None:
    # Stopped by max_new_tokens: the last token is ordinary text.
    fake = await fake_server({GENERATE: sse(A, token("b", generated_text="ab"))})
    engine = await connect(fake.base_url)
    assert await collect(engine, req()) == ["a", "b"]


@pytest.mark.parametrize(
    ("request_kw", "parameters"),
    [
        pytest.param(
            {"seed": 42, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
            {"do_sample": True, "seed": 42, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
            id="sampled",
        ),
        # TGI refuses top_p == 1 and top_k == 0: they restrict nothing and are left out.
        pytest.param(
            {"seed": 5, "temperature": 1.2, "top_p": 1.0, "top_k": 0},
            {"do_sample": True, "seed": 5, "temperature": 1.2},
            id="sampled-unrestricted",
        ),
        # Greedy: TGI refuses temperature 0 and samples whenever a sampling field is set.
        pytest.param({"seed": 0, "top_p": 0.5, "top_k": 3}, {"do_sample": False, "seed": 0}, id="greedy"),
        pytest.param({"seed": None}, {"do_sample": False}, id="no-seed"),
    ],
)
async def test_request_payload(
    fake_server: StartFake, connect: Connect, request_kw: dict[str, Any], parameters: dict[str, Any]
) -> None:
    fake = await fake_server({GENERATE: sse(final())})
    engine = await connect(fake.base_url)
    await collect(engine, req(prompt="p", max_tokens=12, **request_kw))
    (body,) = fake.bodies(GENERATE)
    assert body == {"inputs": "p", "parameters": {"max_new_tokens": 12, **parameters}}


async def test_closing_early_closes_the_connection(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({GENERATE: endless(token("x"))})
    engine = await connect(fake.base_url)
    stream = engine.stream(req(max_tokens=100_000))
    assert await stream.__anext__()
    await stream.aclose()
    await eventually(lambda: fake.disconnects == 1, "the fake sees the client hang up")


async def test_health_describe_and_fetch_info(fake_server: StartFake, connect: Connect) -> None:
    info_body = {
        "model_id": "google/gemma-3-270m",
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": 4095,
        "max_total_tokens": 4096,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": "3.3.4",
        "sha": None,
        "docker_label": None,
    }
    fake = await fake_server({"GET /health": reply(None), "GET /info": reply(info_body)})
    engine = await connect(fake.base_url, slots=2, ctx_max=1024)
    assert await engine.health() is True
    assert (engine.describe().engine, engine.describe().slots, engine.describe().ctx_max) == ("tgi", 2, 1024)
    info = await engine.fetch_info()
    assert (info.version, info.ctx_max, info.slots) == ("3.3.4", 4096, 128)
    assert engine.describe() == info
    assert engine.model_id == "google/gemma-3-270m"


async def test_health_false_while_no_shard_is_ready(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({"GET /health": reply(tgi_error("unhealthy", "healthcheck"), 503)})
    assert await (await connect(fake.base_url)).health() is False
    assert await (await connect(refused_url())).health() is False
