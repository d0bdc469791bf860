"""TritonEngine over loopback, against a fake Triton Inference Server.

These engines cannot run on these machines; the fake follows the documented wire format of
Triton's generate extension (``POST /v2/models/{model}[/versions/{v}]/generate_stream``, one SSE
event ``data: {"model_name", "model_version", "text_output"}`` per response, the body ending after
the final response; ``GET /v2/health/ready``, ``GET /v2/models/{model}/ready``, ``GET /v2``,
``GET /v2/models/{model}``), with the request fields of the TensorRT-LLM ``ensemble`` model and of
the vLLM backend, including its error and overload responses: ``{"error": "..."}`` with 400 (bad
input, unknown model) or 503 (model unavailable, queue full) before the stream, and as an event
inside a stream that already answered 200.

Every row of the error table in ``llama_orch.engines.triton``'s docstring is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llama_orch.engines import TritonEngine
from llama_orch.errors import ConfigError, EngineError
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
)

GENERATE = "POST /v2/models/ensemble/generate_stream"

Connect = Callable[..., Awaitable[TritonEngine]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    engines: list[TritonEngine] = []

    async def _connect(base_url: str, **options: Any) -> TritonEngine:
        options.setdefault("model", "ensemble")
        engine = TritonEngine(base_url, **options)
        await engine.start()
        engines.append(engine)
        return engine

    yield _connect
    for engine in engines:
        await engine.aclose()


def out(text: str, model: str = "ensemble") -> bytes:
    """One streamed response of the TensorRT-LLM ensemble, as the generate extension renders it."""
    return sse_event(
        {
            "batch_index": 0,
            "context_logits": 0.0,
            "cum_log_probs": 0.0,
            "generation_logits": 0.0,
            "model_name": model,
            "model_version": "1",
            "output_log_probs": [0.0],
            "sequence_end": False,
            "sequence_id": 0,
            "sequence_start": False,
            "text_output": text,
        }
    )


def triton_error(status: int, message: str, **headers: str) -> Handler:
    return reply({"error": message}, status, {k.replace("_", "-"): v for k, v in headers.items()})


A, B = out("a"), out("b")


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        # connection refused -> POOL_UNAVAILABLE, retriable
        pytest.param(None, Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000), id="refused"),
        # HTTP 503 (model not ready, queue full) or 429 -> POOL_UNAVAILABLE, retriable
        pytest.param(
            triton_error(503, "Exceeds maximum queue size"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="maximum queue size"),
            id="503-queue-full",
        ),
        pytest.param(
            triton_error(429, "rate limited", retry_after="1.5"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1500),
            id="429",
        ),
        # HTTP 4xx -> ENGINE_ERROR, not retriable
        pytest.param(
            triton_error(400, "Request for unknown model: 'ensemble' is not found"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="unknown model"),
            id="400-unknown-model",
        ),
        pytest.param(
            triton_error(400, "[request id: <id_unknown>] unexpected inference input 'random_seed'"),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="unexpected inference input"),
            id="400-bad-input",
        ),
        pytest.param(triton_error(404, "Not Found"), Expect(ErrorCode.ENGINE_ERROR, False, None), id="404"),
        # other HTTP 5xx -> ENGINE_ERROR, retriable
        pytest.param(
            triton_error(500, "Failed to process the request(s) for model 'ensemble_0_0'"),
            Expect(ErrorCode.ENGINE_ERROR, True, None, says="Failed to process"),
            id="500",
        ),
        # connection dropped mid-stream -> WORKER_RESET, retriable
        pytest.param(sse(A, B, drop=True), Expect(ErrorCode.WORKER_RESET, True, 1000, ("a", "b")), id="dropped"),
        pytest.param(sse(drop=True), Expect(ErrorCode.WORKER_RESET, True, 1000), id="dropped-at-once"),
        # stream ended before a single response -> WORKER_RESET, retriable
        pytest.param(sse(), Expect(ErrorCode.WORKER_RESET, True, 1000, says="any event"), id="empty-stream"),
        # data: {"error": "..."} inside the stream -> ENGINE_ERROR, not retriable
        pytest.param(
            sse(A + B + sse_event({"error": "in-flight batcher: request cancelled by the executor"})),
            Expect(ErrorCode.ENGINE_ERROR, False, None, ("a", "b"), says="in-flight batcher"),
            id="error-event",
        ),
        # malformed event -> ENGINE_ERROR, not retriable
        pytest.param(sse(A, b"data: {\n\n"), Expect(ErrorCode.ENGINE_ERROR, False, None, ("a",)), id="not-json"),
        pytest.param(
            sse(sse_event({"model_name": "ensemble", "model_version": "1"})),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="malformed"),
            id="no-text-output",
        ),
        pytest.param(
            sse(sse_event({"model_name": "ensemble", "text_output": 7})),
            Expect(ErrorCode.ENGINE_ERROR, False, None),
            id="text-output-not-string",
        ),
    ],
)
async def test_error_mapping_table(
    fake_server: StartFake, connect: Connect, handler: Handler | None, expect: Expect
) -> None:
    base = refused_url() if handler is None else (await fake_server({GENERATE: handler})).base_url
    engine = await connect(base)
    got, err = await collect_until_error(engine, req())
    check(got, err, expect, "triton")


@pytest.mark.parametrize("backend", ["tensorrtllm", "vllm"])
async def test_stream_split_across_reads_ends_with_the_body(
    fake_server: StartFake, connect: Connect, backend: str
) -> None:
    whole = out("Hel") + out("lo wörld") + out("") + out("!")
    fake = await fake_server({GENERATE: sse(*awkward_pieces(whole))})
    engine = await connect(fake.base_url, backend=backend)
    assert await collect(engine, req()) == ["Hel", "lo wörld", "!"]


async def test_events_in_one_read_come_as_one_batch(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({GENERATE: sse(A + B + out("c"))})
    engine = await connect(fake.base_url)
    assert await batches(engine, req()) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("backend", "request_kw", "payload"),
    [
        pytest.param(
            "tensorrtllm",
            {"seed": 42, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
            {
                "text_input": "p",
                "max_tokens": 12,
                "stream": True,
                "bad_words": "",
                "stop_words": "",
                "random_seed": 42,
                "temperature": 0.7,
                "top_p": 0.9,
                "top_k": 40,
            },
            id="tensorrtllm-sampled",
        ),
        pytest.param(
            "tensorrtllm",
            {"seed": None, "top_p": 0.5},
            {"text_input": "p", "max_tokens": 12, "stream": True, "bad_words": "", "stop_words": "", "top_k": 1},
            id="tensorrtllm-greedy",
        ),
        pytest.param(
            "vllm",
            {"seed": 42, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
            {
                "text_input": "p",
                "parameters": {
                    "stream": True,
                    "max_tokens": 12,
                    "seed": 42,
                    "temperature": 0.7,
                    "top_p": 0.9,
                    "top_k": 40,
                },
            },
            id="vllm-sampled",
        ),
        pytest.param(
            "vllm",
            {"seed": None},
            {
                "text_input": "p",
                "parameters": {"stream": True, "max_tokens": 12, "temperature": 0.0, "top_p": 1.0, "top_k": -1},
            },
            id="vllm-greedy",
        ),
    ],
)
async def test_request_payload(
    fake_server: StartFake, connect: Connect, backend: str, request_kw: dict[str, Any], payload: dict[str, Any]
) -> None:
    fake = await fake_server({GENERATE: sse(out("a"))})
    engine = await connect(fake.base_url, backend=backend)
    await collect(engine, req(prompt="p", max_tokens=12, **request_kw))
    (body,) = fake.bodies(GENERATE)
    assert body == payload


async def test_model_version_in_the_path(fake_server: StartFake, connect: Connect) -> None:
    route = "POST /v2/models/llama 3/versions/2/generate_stream"
    fake = await fake_server({route: sse(out("a", "llama 3"))})
    engine = await connect(fake.base_url, model="llama 3", model_version="2")
    assert await collect(engine, req()) == ["a"]
    assert fake.count(route) == 1


async def test_closing_early_closes_the_connection(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({GENERATE: endless(out("x"))})
    engine = await connect(fake.base_url)
    stream = engine.stream(req(max_tokens=100_000))
    assert await stream.__anext__()
    await stream.aclose()
    await eventually(lambda: fake.disconnects == 1, "the fake sees the client hang up")


METADATA = {
    "name": "ensemble",
    "versions": ["1"],
    "platform": "ensemble",
    "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [-1, 1]}],
    "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}],
}


async def test_health_describe_and_fetch_info(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server(
        {
            "GET /v2/health/ready": reply(None),
            "GET /v2/models/ensemble/ready": reply(None),
            "GET /v2": reply({"name": "triton", "version": "2.59.0", "extensions": ["generate"]}),
            "GET /v2/models/ensemble": reply(METADATA),
        }
    )
    engine = await connect(fake.base_url, slots=16, ctx_max=8192)
    assert await engine.health() is True
    assert (engine.describe().engine, engine.describe().version) == ("triton", "unknown")
    info = await engine.fetch_info()
    assert (info.version, info.slots, info.ctx_max) == ("2.59.0", 16, 8192)
    assert engine.describe() == info
    assert engine.metadata == METADATA


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param({"GET /v2/health/ready": reply(None, 503)}, id="server-not-ready"),
        pytest.param(
            {"GET /v2/health/ready": reply(None), "GET /v2/models/ensemble/ready": reply(None, 400)},
            id="model-not-ready",
        ),
    ],
)
async def test_health_false(fake_server: StartFake, connect: Connect, routes: dict[str, Handler]) -> None:
    fake = await fake_server(routes)
    assert await (await connect(fake.base_url)).health() is False


async def test_health_false_when_refused(connect: Connect) -> None:
    assert await (await connect(refused_url())).health() is False


async def test_fetch_info_of_an_unknown_model(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server(
        {
            "GET /v2": reply({"name": "triton", "version": "2.59.0"}),
            "GET /v2/models/nope": reply({"error": "Request for unknown model: 'nope' is not found"}, 400),
        }
    )
    engine = await connect(fake.base_url, model="nope")
    with pytest.raises(EngineError, match="unknown model") as info:
        await engine.fetch_info()
    assert (info.value.code, info.value.retriable) == (ErrorCode.ENGINE_ERROR, False)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param({"model": "m", "backend": "onnx"}, "unknown Triton backend", id="backend"),
        pytest.param({"model": ""}, "model", id="no-model"),
    ],
)
def test_misconfiguration_is_a_config_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TritonEngine("http://127.0.0.1:1", **options)
