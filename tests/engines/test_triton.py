"""TritonEngine: what is particular to it. The cases every adapter meets (stream, cancel, every row
of its error table, against responses in Triton's wire format) are in test_conformance.py.

Here: the request fields of the TensorRT-LLM ensemble and of the vLLM backend, the model version in
the path, ``fetch_info``, health and misconfiguration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from llama_orch.engines import TritonEngine
from llama_orch.errors import ConfigError, EngineError
from llama_orch_api import ErrorCode
from tests.engines._fake import (
    Handler,
    StartFake,
    awkward_pieces,
    collect,
    reply,
    req,
    sse,
    sse_event,
)

GENERATE = "POST /v2/models/ensemble/generate_stream"

Connect = Callable[..., Awaitable[TritonEngine]]


@pytest.fixture
def connect(started: Callable[[TritonEngine], Awaitable[TritonEngine]]) -> Connect:
    async def _connect(base_url: str, **options: Any) -> TritonEngine:
        return await started(TritonEngine(base_url, **{"model": "ensemble", **options}))

    return _connect


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


@pytest.mark.parametrize("backend", ["tensorrtllm", "vllm"])
async def test_stream_split_across_reads_ends_with_the_body(
    fake_server: StartFake, connect: Connect, backend: str
) -> None:
    whole = out("Hel") + out("lo wörld") + out("") + out("!")
    fake = await fake_server({GENERATE: sse(*awkward_pieces(whole))})
    engine = await connect(fake.base_url, backend=backend)
    assert await collect(engine, req()) == ["Hel", "lo wörld", "!"]


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
