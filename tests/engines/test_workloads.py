"""Chat, embeddings and KV reuse on every adapter (``engines/_base.py`` and the adapters' workload code).

The llama.cpp cases replay answers recorded from a real ``llama-server``
(``tests/engines/recorded/llamacpp/workloads/``, SmolLM2-135M-Instruct; the same build the
``real_engine`` tests run) and run against the mock engine's HTTP server; the vLLM, TGI/TEI and
OpenAI cases use the wire shapes those servers document.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llama_orch.engines import (
    ChatMessage,
    Engine,
    EngineRequest,
    LlamaCppEngine,
    MockEngine,
    MockSettings,
    OpenAIEngine,
    StreamReport,
    TGIEngine,
    TritonEngine,
    VLLMEngine,
    mock_embedding,
    mock_tokens,
)
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode, Workload
from tests.engines._fake import DONE, StartFake, collect, reply, sse, sse_event

RECORDED = Path(__file__).parent / "recorded" / "llamacpp" / "workloads"
MESSAGES = (ChatMessage("system", "You are terse."), ChatMessage("user", "Say hi."))
StartMock = Callable[[MockSettings], Awaitable[str]]


def recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def chat_req(max_tokens: int = 6, **kw: Any) -> EngineRequest:
    kw.setdefault("seed", 7)
    return EngineRequest("t1", "", max_tokens, messages=MESSAGES, report=StreamReport(), **kw)


async def started(engine: Engine) -> Engine:
    await engine.start()
    return engine


@pytest.fixture
async def engines() -> Any:
    made: list[Engine] = []

    async def _make(engine: Engine) -> Engine:
        made.append(engine)
        return await started(engine)

    yield _make
    for engine in made:
        await engine.aclose()


# --------------------------------------------------------------------------------------------
# llama.cpp


async def test_llamacpp_chat_sends_messages_for_the_engine_template_and_reads_the_recorded_stream(
    fake_server: StartFake, engines: Any
) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(recorded("chat-stream.sse"))})
    engine = await engines(LlamaCppEngine(fake.base_url))
    request = chat_req(slot=1)
    assert await collect(engine, request) == ["I", "'m", " here", " to", " help", " with"]
    (body,) = fake.bodies("POST /v1/chat/completions")
    # The messages go as they are: the engine's chat template renders them, we never concatenate.
    assert body["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}]
    assert "prompt" not in body
    assert (body["max_tokens"], body["seed"], body["id_slot"], body["cache_prompt"], body["stream"]) == (
        6,
        7,
        1,
        True,
        True,
    )
    want = StreamReport(prompt_tokens=22, cached_tokens=0, completion_tokens=6, finish_reason="length")
    assert request.report == want


async def test_llamacpp_second_turn_on_the_same_slot_reports_the_cached_prefix(
    fake_server: StartFake, engines: Any
) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(recorded("chat-stream-turn2.sse"))})
    engine = await engines(LlamaCppEngine(fake.base_url))
    request = chat_req(max_tokens=3, slot=1)
    assert len(await collect(engine, request)) == 3
    assert request.report is not None
    assert (request.report.cached_tokens, request.report.prompt_tokens) == (22, 37)


async def test_llamacpp_completion_report_from_the_recorded_stop_event(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({"POST /completion": sse(recorded("completion-stream.sse"))})
    engine = await engines(LlamaCppEngine(fake.base_url))
    request = EngineRequest("t1", "Once upon", 3, seed=1, report=StreamReport(), stop=(".",))
    assert len(await collect(engine, request)) == 3
    assert request.report == StreamReport(prompt_tokens=2, cached_tokens=0, completion_tokens=3, finish_reason="length")
    (body,) = fake.bodies("POST /completion")
    assert body["stop"] == ["."]
    assert "id_slot" not in body


@pytest.mark.parametrize(
    ("determinism", "cache_prompt", "sent"),
    [
        (Determinism.best_effort, True, True),
        (Determinism.best_effort, False, False),
        # A strict task never resumes from a cache, whatever is asked (logits would differ).
        (Determinism.strict, True, False),
    ],
)
async def test_llamacpp_cache_prompt_follows_the_request(
    fake_server: StartFake, engines: Any, determinism: Determinism, cache_prompt: bool, sent: bool
) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(recorded("chat-stream.sse"))})
    engine = await engines(LlamaCppEngine(fake.base_url))
    await collect(engine, chat_req(slot=0, determinism=determinism, cache_prompt=cache_prompt))
    assert fake.bodies("POST /v1/chat/completions")[0]["cache_prompt"] is sent


async def test_llamacpp_embeddings_from_the_recorded_answer(fake_server: StartFake, engines: Any) -> None:
    answer = json.loads(recorded("embeddings.json"))
    fake = await fake_server({"POST /v1/embeddings": reply(answer)})
    engine = await engines(LlamaCppEngine(fake.base_url, embeddings=True))
    result = await engine.embed(["hello world", "second"])
    assert [len(v) for v in result.vectors] == [576, 576]
    assert result.vectors[1] == answer["data"][1]["embedding"]
    assert result.prompt_tokens == 3
    assert fake.bodies("POST /v1/embeddings") == [{"input": ["hello world", "second"], "encoding_format": "float"}]
    assert Workload.embedding in engine.describe().workloads


async def test_llamacpp_without_embeddings_refuses_them_without_asking(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({})
    engine = await engines(LlamaCppEngine(fake.base_url))
    with pytest.raises(EngineError) as info:
        await engine.embed(["x"])
    assert info.value.code is ErrorCode.WORKLOAD_UNSUPPORTED
    assert not info.value.retriable
    assert fake.seen == []
    assert engine.describe().workloads == {Workload.completion, Workload.chat}


async def test_llamacpp_server_without_the_flag_answers_501_mapped(fake_server: StartFake, engines: Any) -> None:
    body = {
        "error": {
            "code": 501,
            "message": "This server does not support embeddings. Start it with `--embeddings`",
            "type": "not_supported_error",
        }
    }
    fake = await fake_server({"POST /v1/embeddings": reply(body, status=501)})
    engine = await engines(LlamaCppEngine(fake.base_url, embeddings=True))
    with pytest.raises(EngineError) as info:
        await engine.embed(["x"])
    assert info.value.code is ErrorCode.ENGINE_ERROR
    assert "--embeddings" in info.value.message


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ({"data": []}, "0 embeddings for 1"),
        ({"data": [{"index": 0, "embedding": ["a"]}]}, "not a vector"),
        ({"data": [{"index": 0, "embedding": []}]}, "not a vector"),
        ({"data": [{"index": 3, "embedding": [1.0]}]}, "bad indexes"),
        ([1, 2], "no embeddings"),
    ],
)
async def test_malformed_embeddings_are_engine_errors(
    fake_server: StartFake, engines: Any, answer: Any, what: str
) -> None:
    fake = await fake_server({"POST /v1/embeddings": reply(answer)})
    engine = await engines(LlamaCppEngine(fake.base_url, embeddings=True))
    with pytest.raises(EngineError, match=what) as info:
        await engine.embed(["x"])
    assert info.value.code is ErrorCode.ENGINE_ERROR


async def test_template_and_tokenize(fake_server: StartFake, engines: Any) -> None:
    rendered = "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nSay hi.<|im_end|>\n"
    fake = await fake_server(
        {"POST /apply-template": reply({"prompt": rendered}), "POST /tokenize": reply({"tokens": [36218, 15876, 30]})}
    )
    engine = await engines(LlamaCppEngine(fake.base_url))
    assert await engine.apply_template(MESSAGES) == rendered
    assert await engine.tokenize("Say hi.") == [36218, 15876, 30]
    assert fake.bodies("POST /apply-template")[0]["messages"][1] == {"role": "user", "content": "Say hi."}


async def test_llamacpp_against_the_mock_engine_server(mock_engine_server: StartMock, engines: Any) -> None:
    settings = MockSettings(tokens_per_s=None, first_token_ms=0, embedding_dim=8)
    engine = await engines(LlamaCppEngine(await mock_engine_server(settings), embeddings=True))
    first = chat_req(max_tokens=5, slot=0)
    assert await collect(engine, first) == mock_tokens(first)
    second = EngineRequest(
        "t2", "", 4, seed=7, slot=0, report=StreamReport(), messages=(*MESSAGES, ChatMessage("user", "More."))
    )
    assert len(await collect(engine, second)) == 4
    assert second.report is not None and first.report is not None
    assert second.report.cached_tokens == first.report.prompt_tokens  # the whole first prompt was warm
    assert (await engine.embed(["a"])).vectors == [mock_embedding("a", 8)]


# --------------------------------------------------------------------------------------------
# The mock in process


async def test_mock_chat_depends_on_every_turn_and_reports_slot_warmth() -> None:
    engine = MockEngine(MockSettings(tokens_per_s=None, first_token_ms=0))
    a = await collect(engine, chat_req(slot=2))
    b = await collect(engine, EngineRequest("t", "", 6, seed=7, messages=(MESSAGES[1],)))
    assert a != b
    assert await engine.embed(["x", "x"]) == await engine.embed(["x", "x"])
    warm = chat_req(slot=2)
    await collect(engine, warm)
    cold = chat_req(slot=2, cache_prompt=False)
    await collect(engine, cold)
    assert warm.report is not None and cold.report is not None
    assert warm.report.cached_tokens == warm.report.prompt_tokens and warm.report.cached_tokens
    assert cold.report.cached_tokens == 0
    assert engine.describe().workloads == frozenset(Workload)


def test_mock_embedding_is_a_unit_vector_per_text() -> None:
    v = mock_embedding("hello", 32)
    assert len(v) == 32
    assert abs(sum(x * x for x in v) - 1.0) < 1e-9
    assert v == mock_embedding("hello", 32) != mock_embedding("hello!", 32)


# --------------------------------------------------------------------------------------------
# OpenAI-compatible servers and vLLM

# A vLLM 0.9 chat stream (Qwen3-0.6B), as its documentation records it, with the usage chunk
# include_usage adds.
VLLM_CHAT = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": " 😊"}, "logprobs": None, "finish_reason": None}]},
    {
        "choices": [
            {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
        ]
    },
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    },
]


def vllm_chunks() -> list[bytes]:
    common = {"id": "chatcmpl-dc46", "object": "chat.completion.chunk", "created": 1753616032, "model": "m"}
    return [*(sse_event({**common, **c}) for c in VLLM_CHAT), DONE]


async def test_vllm_chat_with_messages_and_usage(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(*vllm_chunks())})
    engine = await engines(VLLMEngine(fake.base_url, model="m", stream_usage=True))
    request = chat_req(stop=("\n\n",))
    assert await collect(engine, request) == ["Hello", " 😊"]
    assert request.report == StreamReport(prompt_tokens=12, cached_tokens=8, completion_tokens=3, finish_reason="stop")
    (body,) = fake.bodies("POST /v1/chat/completions")
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert (body["stop"], body["stream_options"], body["top_k"]) == (["\n\n"], {"include_usage": True}, -1)


async def test_openai_chat_request_goes_to_chat_even_when_built_for_completions(
    fake_server: StartFake, engines: Any
) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(*vllm_chunks())})
    engine = await engines(OpenAIEngine(f"{fake.base_url}/v1", model="m"))
    assert await collect(engine, chat_req()) == ["Hello", " 😊"]
    (body,) = fake.bodies("POST /v1/chat/completions")
    assert "stream_options" not in body and "prompt" not in body


# The OpenAI API reference's embeddings answer (text-embedding-3-small, vector shortened).
OPENAI_EMBEDDINGS = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 1, "embedding": [0.5, -0.25]},
        {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


@pytest.mark.parametrize("kind", ["openai", "vllm"])
async def test_openai_style_embeddings_in_index_order(fake_server: StartFake, engines: Any, kind: str) -> None:
    fake = await fake_server({"POST /v1/embeddings": reply(OPENAI_EMBEDDINGS)})
    engine: Engine
    if kind == "openai":
        engine = await engines(OpenAIEngine(f"{fake.base_url}/v1", model="text-embedding-3-small", embeddings=True))
    else:
        engine = await engines(VLLMEngine(fake.base_url, model="text-embedding-3-small", embeddings=True))
    result = await engine.embed(["first", "second"])
    assert result.vectors == [[0.0023064255, -0.009327292], [0.5, -0.25]]
    assert (result.prompt_tokens, result.model) == (8, "text-embedding-3-small")
    assert fake.bodies("POST /v1/embeddings") == [
        {"input": ["first", "second"], "encoding_format": "float", "model": "text-embedding-3-small"}
    ]
    assert engine.describe().workloads == {Workload.embedding}


async def test_openai_embedding_errors_are_mapped(fake_server: StartFake, engines: Any) -> None:
    error = {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    body = {"error": error}
    fake = await fake_server({"POST /v1/embeddings": reply(body, status=429, headers={"Retry-After": "2"})})
    engine = await engines(OpenAIEngine(f"{fake.base_url}/v1", model="e", embeddings=True))
    with pytest.raises(EngineError) as info:
        await engine.embed(["x"])
    assert (info.value.code, info.value.retriable, info.value.retry_after_ms) == (
        ErrorCode.POOL_UNAVAILABLE,
        True,
        2000,
    )


# --------------------------------------------------------------------------------------------
# TGI (Messages API) and TEI


def tgi_chat_chunks() -> list[bytes]:
    # TGI 3.x Messages API chunks: OpenAI's shape with TGI's system_fingerprint, then [DONE].
    common = {"object": "chat.completion.chunk", "id": "", "created": 1, "model": "tgi", "system_fingerprint": "3.0.1"}

    def chunk(content: str, finish: str | None) -> dict[str, Any]:
        delta = {"role": "assistant", "content": content}
        return {**common, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    return [sse_event(chunk("Hi", None)), sse_event(chunk(" there", None)), sse_event(chunk("", "stop")), DONE]


async def test_tgi_chat_uses_the_messages_api(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(*tgi_chat_chunks())})
    engine = await engines(TGIEngine(fake.base_url))
    assert await collect(engine, chat_req(max_tokens=4)) == ["Hi", " there"]
    (body,) = fake.bodies("POST /v1/chat/completions")
    assert body["messages"][1] == {"role": "user", "content": "Say hi."}
    assert "temperature" not in body  # greedy: TGI refuses temperature 0
    assert body["seed"] == 7


async def test_tgi_chat_stream_cut_before_done_is_a_reset(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({"POST /v1/chat/completions": sse(*tgi_chat_chunks()[:2])})
    engine = await engines(TGIEngine(fake.base_url))
    with pytest.raises(EngineError) as info:
        await collect(engine, chat_req())
    assert info.value.code is ErrorCode.WORKER_RESET


async def test_tei_embed_and_its_errors(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({"POST /embed": reply([[0.1, 0.2], [0.3, 0.4]])})
    engine = await engines(TGIEngine(fake.base_url, embeddings=True))
    assert (await engine.embed(["a", "b"])).vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert fake.bodies("POST /embed") == [{"inputs": ["a", "b"]}]
    with pytest.raises(EngineError) as info:
        await collect(engine, chat_req())
    assert info.value.code is ErrorCode.WORKLOAD_UNSUPPORTED

    overloaded = await fake_server(
        {"POST /embed": reply({"error": "Model is overloaded", "error_type": "Overloaded"}, status=429)}
    )
    busy = await engines(TGIEngine(overloaded.base_url, embeddings=True))
    with pytest.raises(EngineError) as info:
        await busy.embed(["a"])
    assert (info.value.code, info.value.retriable) == (ErrorCode.POOL_UNAVAILABLE, True)


@pytest.mark.parametrize("answer", [[[0.1]], {"error": "x"}, [[0.1], ["a"]]])
async def test_tei_embed_answer_must_be_one_vector_per_input(fake_server: StartFake, engines: Any, answer: Any) -> None:
    fake = await fake_server({"POST /embed": reply(answer)})
    engine = await engines(TGIEngine(fake.base_url, embeddings=True))
    with pytest.raises(EngineError) as info:
        await engine.embed(["a", "b"])
    assert info.value.code is ErrorCode.ENGINE_ERROR


# --------------------------------------------------------------------------------------------
# Triton: completions only


async def test_triton_refuses_chat_and_embeddings_plainly(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({})
    engine = await engines(TritonEngine(fake.base_url, model="ensemble"))
    for attempt in (collect(engine, chat_req()), engine.embed(["x"])):
        with pytest.raises(EngineError) as info:
            await attempt
        assert info.value.code is ErrorCode.WORKLOAD_UNSUPPORTED
        assert "triton does not serve" in info.value.message
    assert fake.seen == []


async def test_triton_passes_stop_words(fake_server: StartFake, engines: Any) -> None:
    fake = await fake_server({"POST /v2/models/ensemble/generate_stream": sse(sse_event({"text_output": "x"}))})
    engine = await engines(TritonEngine(fake.base_url, model="ensemble"))
    await collect(engine, EngineRequest("t", "p", 2, stop=("\n",)))
    assert fake.bodies("POST /v2/models/ensemble/generate_stream")[0]["stop_words"] == ["\n"]
