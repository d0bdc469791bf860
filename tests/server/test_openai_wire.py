"""The OpenAI front door's wire (``server/_openai_wire.py``): requests parsed and refused like OpenAI's,
translated into our task fields, answers and chunks that OpenAI's own SDK types accept, errors mapped."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import openai.types as oai
import pytest
from openai._models import construct_type
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llama_orch._wire import SSEParser
from llama_orch.core import SAMPLER_PROFILES
from llama_orch.engines import ChatMessage
from llama_orch.errors import AdmissionError, EngineError, OrchError, QueueFullError
from llama_orch.server._openai_wire import (
    DONE,
    ChatCompletionRequest,
    ChunkEncoder,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIError,
    Timing,
    Usage,
    chat_response,
    completion_response,
    embeddings_response,
    fingerprint,
    models_response,
    openai_error,
    parse_request,
    sampler_profile_for,
    to_task,
)
from llama_orch_api import Determinism, ErrorCode, ErrorEnvelope, Priority, Workload


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


CHAT = {"model": "embedded:smollm2-135m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "embedded:gemma3-270m", "prompt": "Once upon"}


def events(stream: bytes) -> list[Any]:
    """The data of each SSE event, JSON-decoded except ``[DONE]``."""
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in SSEParser().feed(stream)]


# --------------------------------------------------------------------------------------------
# Parsing


def test_unknown_fields_are_ignored_and_known_ones_read() -> None:
    req = parse_request(
        ChatCompletionRequest,
        body(**CHAT, temperature=0.7, stream=True, stream_options={"include_usage": True}, metadata={"x": 1}),
    )
    assert (req.temperature, req.stream, req.stream_options and req.stream_options.include_usage) == (0.7, True, True)


@pytest.mark.parametrize(
    ("model", "raw", "param", "says"),
    [
        (ChatCompletionRequest, b"{not json", None, "could not parse the JSON"),
        (ChatCompletionRequest, b"[1, 2]", None, "must be a JSON object"),
        (ChatCompletionRequest, body(model="m"), "messages", "Field required"),
        (ChatCompletionRequest, body(model="m", messages=[]), "messages", "at least 1"),
        (ChatCompletionRequest, body(**CHAT, temperature=3), "temperature", "less than or equal to 2"),
        (ChatCompletionRequest, body(**CHAT, top_p=0), "top_p", "greater than 0"),
        (ChatCompletionRequest, body(**CHAT, max_tokens=0), "max_tokens", "greater than or equal to 1"),
        (ChatCompletionRequest, body(**CHAT, seed=-1), "seed", "greater than or equal to 0"),
        (ChatCompletionRequest, body(**CHAT, n=2), "n", "only n=1"),
        (ChatCompletionRequest, body(**CHAT, tools=[{"type": "function"}]), "tools", "not supported"),
        (ChatCompletionRequest, body(**CHAT, response_format={"type": "json_object"}), "response_format", "text"),
        (ChatCompletionRequest, body(**CHAT, logprobs=True), "logprobs", "not supported"),
        (ChatCompletionRequest, body(**CHAT, presence_penalty=0.5), "presence_penalty", "not supported"),
        (ChatCompletionRequest, body(**CHAT, logit_bias={"1": 2}), "logit_bias", "not supported"),
        (ChatCompletionRequest, body(**CHAT, stream_options={"include_usage": True}), "stream_options", "stream"),
        (
            ChatCompletionRequest,
            body(model="m", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            "messages",
            "",
        ),
        (ChatCompletionRequest, body(model="m", messages=[{"role": "wizard", "content": "x"}]), "messages", ""),
        (CompletionRequest, body(model="m", prompt=[1, 2, 3]), "prompt", "token ids"),
        (CompletionRequest, body(model="m", prompt=["a", "b"]), "prompt", "batches"),
        (CompletionRequest, body(**COMPLETION, echo=True), "echo", "not supported"),
        (CompletionRequest, body(**COMPLETION, logprobs=2), "logprobs", "not supported"),
        (CompletionRequest, body(**COMPLETION, best_of=3), "best_of", "not supported"),
        (CompletionRequest, body(**COMPLETION, suffix="end"), "suffix", "not supported"),
        (CompletionRequest, body(prompt="x"), "model", "Field required"),
        (EmbeddingRequest, body(model="m", input=[[1, 2]]), "input", "token ids"),
        (EmbeddingRequest, body(model="m", input=[]), "input", "must not be empty"),
        (EmbeddingRequest, body(model="m", input="x", dimensions=64), "dimensions", "not supported"),
        (EmbeddingRequest, body(model="m", input="x", encoding_format="int8"), "encoding_format", ""),
    ],
)
def test_bad_requests_are_400_naming_the_param(model: type, raw: bytes, param: str | None, says: str) -> None:
    with pytest.raises(OpenAIError) as info:
        parse_request(model, raw)
    err = info.value
    assert err.status == 400
    assert err.type == "invalid_request_error"
    assert err.param is not None and err.param.startswith(param) if param else err.param is None
    assert says in err.message
    assert err.headers["x-should-retry"] == "false"
    assert set(err.body()["error"]) == {"message", "type", "param", "code", "llorch_code"}


def test_message_parts_and_the_developer_role() -> None:
    req = parse_request(
        ChatCompletionRequest,
        body(
            model="m",
            messages=[
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "you."}]},
                {"role": "assistant", "content": None},
            ],
        ),
    )
    assert req.chat_messages() == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hello, you."),
        ChatMessage("assistant", ""),
    )


# --------------------------------------------------------------------------------------------
# Sampler profiles


@pytest.mark.parametrize(
    ("temperature", "top_p", "profile"),
    [
        (None, None, "llorch/sampler@1"),  # ours is greedy where OpenAI's default is 1.0
        (0.0, None, "llorch/sampler@1"),
        (0.0, 0.5, "llorch/sampler@1"),
        (0.2, None, "llorch/sampler@1"),
        (0.7, 0.9, "llorch/balanced@1"),
        (0.5, None, "llorch/balanced@1"),
        (0.9, None, "llorch/creative@1"),
        (1.0, 0.95, "llorch/creative@1"),
        (2.0, None, "llorch/creative@1"),
    ],
)
def test_temperature_and_top_p_choose_the_nearest_profile(
    temperature: float | None, top_p: float | None, profile: str
) -> None:
    assert sampler_profile_for(temperature, top_p, None) == profile


def test_a_named_profile_wins_and_contradictions_are_refused() -> None:
    assert sampler_profile_for(None, None, "llorch/balanced@1") == "llorch/balanced@1"
    assert sampler_profile_for(0.7, 0.9, "llorch/balanced@1") == "llorch/balanced@1"
    with pytest.raises(OpenAIError, match="contradicts") as info:
        sampler_profile_for(0.0, None, "llorch/balanced@1")
    assert info.value.param == "temperature"
    with pytest.raises(OpenAIError, match="unknown sampler profile"):
        sampler_profile_for(None, None, "llorch/wild@9")
    assert set(SAMPLER_PROFILES) >= {"llorch/sampler@1", "llorch/balanced@1", "llorch/creative@1"}


# --------------------------------------------------------------------------------------------
# Into our task


def chat(**fields: Any) -> ChatCompletionRequest:
    return parse_request(ChatCompletionRequest, body(**{**CHAT, **fields}))


def test_chat_becomes_a_chat_task_with_the_messages() -> None:
    req = chat(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], stop="\n")
    front = to_task(req, {}, default_max_tokens=512, offers_strict=True)
    task = front.task
    assert (task.workload, task.model_ref, task.priority, task.max_tokens) == (
        Workload.chat,
        "embedded:smollm2-135m",
        Priority.interactive,
        512,
    )
    assert front.messages == (ChatMessage("system", "S"), ChatMessage("user", "U"))
    assert [(m.role, m.content) for m in task.messages or ()] == [("system", "S"), ("user", "U")]
    assert (task.prompt, task.stop) == (None, ["\n"])
    assert (front.stop, front.stream, front.include_usage, front.explicit_max_tokens) == (("\n",), False, False, False)
    assert (task.sampler_profile_version, task.determinism, task.seed) == ("llorch/sampler@1", "best_effort", None)


def test_headers_set_priority_session_profile_and_determinism() -> None:
    headers = {
        "x-llorch-priority": "batch",
        "X-Llorch-Session": "agent-7",
        "X-Llorch-Sampler-Profile": "llorch/balanced@1",
        "X-Llorch-Determinism": "best_effort",
    }
    front = to_task(chat(seed=5, max_completion_tokens=9), headers, default_max_tokens=512, offers_strict=True)
    task = front.task
    assert (task.priority, task.session_id, task.sampler_profile_version) == (
        Priority.batch,
        "agent-7",
        "llorch/balanced@1",
    )
    assert (task.determinism, task.seed, task.max_tokens) == (Determinism.best_effort, 5, 9)


@pytest.mark.parametrize(("offers_strict", "want"), [(True, Determinism.strict), (False, Determinism.best_effort)])
def test_a_seeded_request_is_strict_where_the_pool_offers_it(offers_strict: bool, want: Determinism) -> None:
    assert to_task(chat(seed=1), {}, default_max_tokens=8, offers_strict=offers_strict).task.determinism is want


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"X-Llorch-Priority": "urgent"}, "X-Llorch-Priority"),
        ({"X-Llorch-Determinism": "exact"}, "X-Llorch-Determinism"),
        ({"X-Llorch-Session": "bad id with spaces"}, "X-Llorch-Session"),
        ({"X-Llorch-Sampler-Profile": "nope"}, "X-Llorch-Sampler-Profile"),
    ],
)
def test_bad_headers_are_400(headers: dict[str, str], param: str) -> None:
    with pytest.raises(OpenAIError) as info:
        to_task(chat(), headers, default_max_tokens=8, offers_strict=True)
    assert (info.value.status, info.value.param) == (400, param)


def test_completions_default_to_openais_16_tokens_and_embeddings_take_inputs() -> None:
    comp = to_task(parse_request(CompletionRequest, body(**COMPLETION)), {}, default_max_tokens=999, offers_strict=True)
    assert (comp.task.workload, comp.task.prompt, comp.task.max_tokens, comp.messages) == (
        Workload.completion,
        "Once upon",
        16,
        None,
    )
    listed = to_task(
        parse_request(CompletionRequest, body(model="m", prompt=["only one"])),
        {},
        default_max_tokens=1,
        offers_strict=False,
    )
    assert listed.task.prompt == "only one"
    emb = to_task(
        parse_request(EmbeddingRequest, body(model="e", input=["a", "b"], encoding_format="base64")),
        {"X-Llorch-Priority": "batch"},
        default_max_tokens=1,
        offers_strict=False,
    )
    assert (emb.task.workload, emb.task.inputs, emb.inputs, emb.encoding_format, emb.task.priority) == (
        Workload.embedding,
        ["a", "b"],
        ("a", "b"),
        "base64",
        Priority.batch,
    )


# --------------------------------------------------------------------------------------------
# Answers, checked with the openai SDK's own types


TIMING = Timing("task-1", "chat", 2, 40, replica="chat/r0", queue_wait_ms=35, ttft_ms=61.5, sampler_profile="p")


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream_is_what_the_sdk_reads(include_usage: bool) -> None:
    enc = ChunkEncoder("chat", "chatcmpl-1", 1700000000, "m", "fp", include_usage=include_usage)
    stream = enc.start() + enc.tokens(["Hel", 'lo "quoted"\n', "ünï 🙂"]) + enc.finish("stop", Usage(7, 3, 2), TIMING)
    got = events(stream)
    assert got[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in got[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == 'Hello "quoted"\nünï 🙂'
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert finals[0].model_extra == {"llorch": TIMING.body()}
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (
            7,
            3,
            10,
        )
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert all(c.usage is None for c in chunks)


def test_completion_stream_and_answers_are_what_the_sdk_reads() -> None:
    enc = ChunkEncoder("completion", "cmpl-1", 1, "m", "fp")
    got = events(enc.tokens(["a", "b"]) + enc.finish("length", None, None))
    # The SDK reads stream chunks without validating them (its Completion type forbids the null
    # finish_reason every streamed chunk but the last carries, as OpenAI's own streams do); the last
    # one must validate.
    completions = [construct_type(type_=oai.Completion, value=e) for e in got[:-1]]
    assert [c.choices[0].text for c in completions] == ["a", "b", ""]
    assert oai.Completion.model_validate(got[-2]).choices[0].finish_reason == "length"
    assert enc.start() == b""

    whole = oai.Completion.model_validate(
        completion_response(
            id="cmpl-2",
            created=1,
            model="m",
            text="ab",
            finish_reason="stop",
            usage=Usage(2, 2),
            system_fingerprint="f",
        )
    )
    assert (whole.choices[0].text, whole.usage and whole.usage.total_tokens) == ("ab", 4)
    answer = ChatCompletion.model_validate(
        chat_response(
            id="c",
            created=1,
            model="m",
            text="hi",
            finish_reason="length",
            usage=Usage(5, 1, 4),
            system_fingerprint="f",
            timing=TIMING,
        )
    )
    assert answer.choices[0].message.content == "hi" and answer.choices[0].message.role == "assistant"
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 4
    assert answer.model_extra == {"llorch": TIMING.body()}


def test_embeddings_in_float_and_in_the_sdks_base64() -> None:
    vectors = [[0.5, -1.25, 3.0], [0.0, 1e-7, -2.5]]
    as_floats = oai.CreateEmbeddingResponse.model_validate(
        embeddings_response(vectors, model="e", prompt_tokens=4, encoding_format="float")
    )
    assert [d.embedding for d in as_floats.data] == vectors
    raw = embeddings_response(vectors, model="e", prompt_tokens=4, encoding_format="base64")
    # What the openai SDK does with the base64 it asks for by default: little-endian float32.
    decoded = [list(struct.unpack("<3f", base64.b64decode(d["embedding"]))) for d in raw["data"]]
    assert decoded == [pytest.approx(v, rel=1e-6) for v in vectors]
    assert raw["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_models_list_and_fingerprint() -> None:
    body_ = models_response(["embedded:gemma3-270m", "embedded:smollm2-135m", "embedded:gemma3-270m"], created=5)
    assert [oai.Model.model_validate(m).id for m in body_["data"]] == ["embedded:gemma3-270m", "embedded:smollm2-135m"]
    assert body_["object"] == "list"
    assert fingerprint("llamacpp", "b6500", "sha256:" + "ab" * 32) == "llorch-llamacpp-b6500-abababababab"
    assert fingerprint("mock", "mock-1", None) == "llorch-mock-mock-1"


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_an_openai_answer(code: ErrorCode) -> None:
    err = openai_error(OrchError(code, f"what happened: {code.value}", retriable=True, retry_after_ms=1500))
    assert err.llorch_code is code
    assert err.body()["error"]["message"] == f"what happened: {code.value}"
    client_fault = code in {
        ErrorCode.INVALID_PARAMS,
        ErrorCode.UNKNOWN_ENGINE,
        ErrorCode.UNKNOWN_MODEL,
        ErrorCode.UNKNOWN_POOL,
        ErrorCode.CTX_EXCEEDED,
        ErrorCode.MAX_TOKENS_EXCEEDED,
        ErrorCode.DETERMINISM_UNSUPPORTED,
        ErrorCode.WORKLOAD_UNSUPPORTED,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.NOT_FOUND,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.TASK_EXISTS,
    }
    if client_fault:
        assert 400 <= err.status < 500, "bad input is never a 5xx"
        assert err.type == "invalid_request_error"
    assert err.headers["Retry-After"] == "2"  # 1.5 s, rounded up to whole seconds
    assert err.headers["retry-after-ms"] == "1500"


@pytest.mark.parametrize(
    ("error", "status", "type_", "code", "retry_after"),
    [
        (QueueFullError(ErrorCode.ADMISSION_REJECT, "queue full", retriable=True, retry_after_ms=250), 429,
         "rate_limit_error", "rate_limit_exceeded", "1"),
        (AdmissionError(ErrorCode.UNKNOWN_MODEL, "no pool serves 'x'"), 404, "invalid_request_error",
         "model_not_found", None),
        (AdmissionError(ErrorCode.CTX_EXCEEDED, "too long"), 400, "invalid_request_error",
         "context_length_exceeded", None),
        (AdmissionError(ErrorCode.PAYLOAD_TOO_LARGE, "big"), 413, "invalid_request_error", "PAYLOAD_TOO_LARGE", None),
        (AdmissionError(ErrorCode.BUDGET_EXCEEDED, "spent"), 402, "insufficient_quota", "insufficient_quota", None),
        (AdmissionError(ErrorCode.POOL_UNREADY, "loading", retriable=True, retry_after_ms=5000), 503,
         "server_error", "POOL_UNREADY", "5"),
        (EngineError(ErrorCode.ENGINE_ERROR, "engine said no"), 502, "server_error", "ENGINE_ERROR", None),
    ],
)  # fmt: skip
def test_the_mapping_rows(error: OrchError, status: int, type_: str, code: str, retry_after: str | None) -> None:
    err = openai_error(error)
    assert (err.status, err.type, err.code, err.headers.get("Retry-After")) == (status, type_, code, retry_after)
    assert err.headers["x-should-retry"] == ("true" if error.retriable else "false")


def test_an_sse_error_event_maps_the_same_and_ends_a_stream() -> None:
    envelope = ErrorEnvelope(code=ErrorCode.WORKER_RESET, message="engine died", retriable=True, retry_after_ms=1000)
    err = openai_error(envelope)
    assert (err.status, err.type) == (503, "server_error")
    (event,) = events(err.event())
    assert event == {
        "error": {
            "message": "engine died",
            "type": "server_error",
            "param": None,
            "code": "WORKER_RESET",
            "llorch_code": "WORKER_RESET",
        }
    }
    assert DONE == b"data: [DONE]\n\n"
