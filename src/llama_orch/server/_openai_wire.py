"""The OpenAI-compatible front door's wire: request models, their translation into our task fields,
and our events and errors written in OpenAI's shapes. Pure functions, no I/O; the routes use them.

Requests (``POST /v1/completions``, ``/v1/chat/completions``, ``/v1/embeddings``) follow OpenAI's API
reference. Unknown fields are ignored, as OpenAI-compatible servers do (clients send many); fields
whose meaning we cannot honour are refused with a 400 naming them (``n`` > 1, ``logprobs``,
``echo``, ``suffix``, ``best_of`` > 1, non-zero penalties, ``logit_bias``, ``tools``, a
``response_format`` other than text, image parts, token-id prompts, ``dimensions``), never
silently dropped.

Headers in: ``X-Llorch-Priority`` (``interactive`` default, ``batch``), ``X-Llorch-Session`` (a
session id: budgets, turns, KV warmth), ``X-Llorch-Sampler-Profile`` (a profile name),
``X-Llorch-Determinism`` (``strict`` | ``best_effort``); ``X-Correlation-Id`` is the server's.

Sampling (:func:`sampler_profile_for`): a profile named in ``X-Llorch-Sampler-Profile`` is used as
is, and ``temperature``/``top_p`` that contradict it are a 400. Otherwise ``temperature`` and
``top_p`` choose the nearest profile: absent or ``temperature: 0`` is ``llorch/sampler@1`` (greedy;
note OpenAI's own default is 1.0, ours is greedy, so unseeded output is reproducible), else the
closest of ``llorch/balanced@1`` (0.7, 0.9) and ``llorch/creative@1`` (1.0, 0.95) by
``|Δtemperature| + |Δtop_p|``, a tie going to the cooler one. The profile used is reported in the
``llorch`` object of the response. ``seed`` is the task's seed; a seeded request runs ``strict``
where the pool offers it (byte-identical repeats), unless ``X-Llorch-Determinism`` says otherwise.

Answers: OpenAI's objects (``text_completion``, ``chat.completion``, their ``.chunk`` forms, the
``usage`` chunk of ``stream_options.include_usage``, ``list`` of ``embedding`` with ``float`` or
``base64`` vectors, ``list`` of ``model``), each carrying one more key, ``llorch``, with what no other
OpenAI-compatible server says: task id, pool, queue position, predicted start, queue wait, time to
first token, decode time, KV warmth, the sampler profile and determinism used.

Errors (:func:`openai_error`): ``{"error": {"message", "type", "param", "code", "llorch_code"}}``.

========================================  ======  =====================  ===========================
our code                                  status  type                   code
========================================  ======  =====================  ===========================
INVALID_PARAMS, MAX_TOKENS_EXCEEDED,      400     invalid_request_error  ours (``INVALID_PARAMS``…)
DETERMINISM/WORKLOAD_UNSUPPORTED,
UNKNOWN_ENGINE, UNKNOWN_POOL
CTX_EXCEEDED                              400     invalid_request_error  ``context_length_exceeded``
UNKNOWN_MODEL                             404     invalid_request_error  ``model_not_found``
NOT_FOUND / METHOD_NOT_ALLOWED            404/405 invalid_request_error  ours
PAYLOAD_TOO_LARGE                         413     invalid_request_error  ours
BUDGET_EXCEEDED                           402     insufficient_quota     ``insufficient_quota``
UNTRUSTED_ARTIFACT                        403     permission_error       ours
CONFLICT, TASK_EXISTS, CANCELLED          409     invalid_request_error  ours
MODEL_DEPRECATED                          410     invalid_request_error  ours
ADMISSION_REJECT, QUEUE_FULL_DROP_LRU     429     rate_limit_error       ``rate_limit_exceeded``
POOL_UNREADY/UNAVAILABLE/DRAINING,        503     server_error           ours
DEADLINE_UNMET, WORKER_RESET,
DECODE_TIMEOUT
ENGINE_ERROR                              502     server_error           ours
INTERNAL (and anything else)              500     server_error           ours
========================================  ======  =====================  ===========================

Every error answer carries ``x-should-retry`` (``true`` only when retrying can help; OpenAI's SDKs
obey it), and a retriable one ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llama_orch.core import SAMPLER_PROFILES
from llama_orch.engines import ChatMessage
from llama_orch.engines._base import ChatRole
from llama_orch.errors import OrchError
from llama_orch_api import ERROR_STATUS, Determinism, ErrorCode, ErrorEnvelope, Priority, TaskRequest, Workload

HEADER_PRIORITY = "X-Llorch-Priority"
HEADER_SESSION = "X-Llorch-Session"
HEADER_SAMPLER = "X-Llorch-Sampler-Profile"
HEADER_DETERMINISM = "X-Llorch-Determinism"
HEADER_QUEUE_POSITION = "X-Llorch-Queue-Position"
HEADER_PREDICTED_START = "X-Llorch-Predicted-Start-Ms"
HEADER_TASK = "X-Llorch-Task-Id"
HEADER_POOL = "X-Llorch-Pool"

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""OpenAI's default ``max_tokens`` for ``/v1/completions``; chat defaults to the pool's limit."""
DONE = b"data: [DONE]\n\n"

# The profiles temperature/top_p are matched against (aliases left out), coolest first.
_NEAREST = ("llorch/sampler@1", "llorch/balanced@1", "llorch/creative@1")
_DEFAULT_PROFILE = "llorch/sampler@1"


class OpenAIError(Exception):
    """An answer in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        llorch_code: ErrorCode = ErrorCode.INVALID_PARAMS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code if code is not None else llorch_code.value
        self.param = param
        self.llorch_code = llorch_code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
                "llorch_code": self.llorch_code.value,
            }
        }

    def event(self) -> bytes:
        """The error as the last SSE event of a stream that had already started."""
        return b"data: " + json.dumps(self.body(), ensure_ascii=False).encode() + b"\n\n"


def bad_request(message: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, headers={"x-should-retry": "false"})


# ---------------------------------------------------------------------------------------------
# Requests


class _Body(BaseModel):
    # Unknown fields are ignored: clients (LiteLLM, aider, Continue) send many we have no use for.
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessageIn(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


# OpenAI's newer 'developer' role is the system prompt of the templates models ship.
_ROLES: dict[str, ChatRole] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}

Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(gt=0, le=1)]
Stop = str | Annotated[list[str], Field(max_length=16)]


class _Generation(_Body):
    model: str = Field(min_length=1, max_length=512)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    def unsupported(self) -> list[tuple[str, str]]:
        """``(param, why)`` for every field set to something we cannot honour."""
        found = []
        if self.n != 1:
            found.append(("n", "only n=1 is supported"))
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                found.append((name, f"{name} is not supported (sampler profiles fix the sampling)"))
        if self.logit_bias:
            found.append(("logit_bias", "logit_bias is not supported"))
        if self.stream_options is not None and not self.stream:
            found.append(("stream_options", "stream_options is only allowed with stream: true"))
        return found

    def stop_texts(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        texts = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return tuple(t for t in texts if t)


class CompletionRequest(_Generation):
    """``POST /v1/completions``."""

    prompt: str | Annotated[list[str], Field(min_length=1)] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None

    def unsupported(self) -> list[tuple[str, str]]:
        found = super().unsupported()
        if isinstance(self.prompt, list) and (len(self.prompt) != 1 or not isinstance(self.prompt[0], str)):
            found.append(("prompt", "prompt must be one string (token ids and batches of prompts are not supported)"))
        if self.echo:
            found.append(("echo", "echo is not supported"))
        if self.logprobs is not None:
            found.append(("logprobs", "logprobs are not supported"))
        if self.best_of not in (None, 1):
            found.append(("best_of", "best_of is not supported"))
        if self.suffix:
            found.append(("suffix", "suffix (insertion) is not supported"))
        return found

    def text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        first = self.prompt[0]
        assert isinstance(first, str)  # unsupported() refused the rest
        return first


class ChatCompletionRequest(_Generation):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessageIn], Field(min_length=1)]
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None

    def unsupported(self) -> list[tuple[str, str]]:
        found = super().unsupported()
        if self.tools:
            found.append(("tools", "tools (function calling) are not supported"))
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            found.append(("response_format", "only response_format type 'text' is supported"))
        if self.logprobs or self.top_logprobs:
            found.append(("logprobs", "logprobs are not supported"))
        return found

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        return tuple(ChatMessage(_ROLES[m.role], m.text()) for m in self.messages)


class EmbeddingRequest(_Body):
    """``POST /v1/embeddings``."""

    model: str = Field(min_length=1, max_length=512)
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    def unsupported(self) -> list[tuple[str, str]]:
        found = []
        if isinstance(self.input, list) and not self.input:
            found.append(("input", "input must not be empty"))
        elif isinstance(self.input, list) and not all(isinstance(x, str) for x in self.input):
            found.append(("input", "input must be text (token ids are not supported)"))
        if self.dimensions is not None:
            found.append(("dimensions", "dimensions is not supported (the model's width is used)"))
        return found

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        return [x for x in self.input if isinstance(x, str)]


Request = CompletionRequest | ChatCompletionRequest | EmbeddingRequest


R = TypeVar("R", CompletionRequest, ChatCompletionRequest, EmbeddingRequest)


def parse_request(model: type[R], body: bytes) -> R:
    """``body`` as ``model``, or a 400 :class:`OpenAIError` naming the first bad field."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("We could not parse the JSON body of your request.") from None
    if not isinstance(raw, dict):
        raise bad_request("The request body must be a JSON object.")
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "list[", "str")))
        message = f"Invalid value for '{param}': {first['msg']}" if param else first["msg"]
        raise bad_request(message, param or None) from None
    if problems := parsed.unsupported():
        param, why = problems[0]
        raise bad_request(why, param)
    return parsed


# ---------------------------------------------------------------------------------------------
# Into our task


@dataclass(frozen=True, slots=True)
class FrontDoorTask:
    """What a front-door request asks of the same admission and queues as ``POST /v1/tasks``:
    ``task`` is that very request (a chat's ``messages`` in it, for the engine's template)."""

    task: TaskRequest
    messages: tuple[ChatMessage, ...] | None = None
    inputs: tuple[str, ...] | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    encoding_format: Literal["float", "base64"] = "float"
    explicit_max_tokens: bool = True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if value is not None else None


def sampler_profile_for(temperature: float | None, top_p: float | None, named: str | None) -> str:
    """The sampler profile a request's sampling fields and ``X-Llorch-Sampler-Profile`` choose (see the
    module docstring); a 400 for an unknown profile or sampling fields that contradict a named one."""
    if named is not None:
        spec = SAMPLER_PROFILES.get(named)
        if spec is None:
            known = ", ".join(sorted(SAMPLER_PROFILES))
            raise bad_request(f"unknown sampler profile {named!r}; known: {known}", HEADER_SAMPLER)
        if temperature is not None and not math.isclose(temperature, spec.temperature, abs_tol=1e-6):
            raise bad_request(f"temperature {temperature} contradicts sampler profile {named!r}", "temperature")
        if top_p is not None and not math.isclose(top_p, spec.top_p, abs_tol=1e-6):
            raise bad_request(f"top_p {top_p} contradicts sampler profile {named!r}", "top_p")
        return named
    if temperature is None or temperature == 0:
        return _DEFAULT_PROFILE
    want_p = 1.0 if top_p is None else top_p

    def distance(name: str) -> float:
        spec = SAMPLER_PROFILES[name]
        return abs(spec.temperature - temperature) + abs(spec.top_p - want_p)

    return min(_NEAREST, key=lambda name: (distance(name), SAMPLER_PROFILES[name].temperature))


def to_task(
    request: CompletionRequest | ChatCompletionRequest | EmbeddingRequest,
    headers: Mapping[str, str],
    *,
    default_max_tokens: int,
    offers_strict: bool,
) -> FrontDoorTask:
    """Translate a parsed front-door request and its ``X-Llorch-*`` headers into our task fields.

    ``default_max_tokens`` is what a chat request without ``max_tokens`` gets (the pool's limit);
    ``offers_strict`` whether the target pool can run ``strict`` (a seeded request then does).
    Raises a 400 :class:`OpenAIError` for a bad header.
    """
    priority_raw = _header(headers, HEADER_PRIORITY) or Priority.interactive.value
    try:
        priority = Priority(priority_raw)
    except ValueError:
        message = f"{HEADER_PRIORITY} must be 'interactive' or 'batch', not {priority_raw!r}"
        raise bad_request(message, HEADER_PRIORITY) from None
    session = _header(headers, HEADER_SESSION) or None
    fields: dict[str, Any] = {"model_ref": request.model, "priority": priority, "session_id": session}
    if isinstance(request, EmbeddingRequest):
        fields.update(workload=Workload.embedding, inputs=request.texts(), max_tokens=1)
        return FrontDoorTask(
            _task(fields),
            inputs=tuple(request.texts()),
            encoding_format=request.encoding_format,
        )
    profile = sampler_profile_for(request.temperature, request.top_p, _header(headers, HEADER_SAMPLER) or None)
    determinism_raw = _header(headers, HEADER_DETERMINISM)
    if determinism_raw:
        try:
            determinism = Determinism(determinism_raw)
        except ValueError:
            message = f"{HEADER_DETERMINISM} must be 'strict' or 'best_effort', not {determinism_raw!r}"
            raise bad_request(message, HEADER_DETERMINISM) from None
    else:
        determinism = Determinism.strict if request.seed is not None and offers_strict else Determinism.best_effort
    max_tokens = request.max_tokens
    messages: tuple[ChatMessage, ...] | None = None
    if isinstance(request, ChatCompletionRequest):
        max_tokens = request.max_completion_tokens or max_tokens
        messages = request.chat_messages()
        fields.update(workload=Workload.chat, messages=[{"role": m.role, "content": m.content} for m in messages])
        default = default_max_tokens
    else:
        fields.update(workload=Workload.completion, prompt=request.text())
        default = COMPLETIONS_DEFAULT_MAX_TOKENS
    stop = request.stop_texts()
    fields.update(
        stop=list(stop) or None,
        seed=request.seed,
        determinism=determinism,
        sampler_profile_version=profile,
        max_tokens=max_tokens or default,
    )
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return FrontDoorTask(
        _task(fields),
        messages=messages,
        stop=stop,
        stream=request.stream,
        include_usage=include_usage,
        explicit_max_tokens=max_tokens is not None,
    )


def _task(fields: dict[str, Any]) -> TaskRequest:
    try:
        return TaskRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(map(str, first["loc"]))
        param = {"session_id": HEADER_SESSION, "model_ref": "model"}.get(loc, loc or None)
        raise bad_request(f"Invalid value for '{param}': {first['msg']}", param) from None


# ---------------------------------------------------------------------------------------------
# Our events in OpenAI's shapes


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@dataclass(slots=True)
class Timing:
    """What the ``llorch`` object of an answer says about the task's life."""

    task_id: str
    pool: str
    queue_position: int
    predicted_start_ms: int
    replica: str | None = None
    queue_wait_ms: int | None = None
    ttft_ms: float | None = None
    decode_ms: float | None = None
    kv_warmth: bool | None = None
    sampler_profile: str | None = None
    determinism: str | None = None

    def body(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def headers(self) -> dict[str, str]:
        """Headers every answer carries (known at admission, so streams send them too)."""
        return {
            HEADER_TASK: self.task_id,
            HEADER_POOL: self.pool,
            HEADER_QUEUE_POSITION: str(self.queue_position),
            HEADER_PREDICTED_START: str(self.predicted_start_ms),
        }


def fingerprint(engine: str, version: str, model_digest: str | None) -> str:
    """``system_fingerprint``: what must match for seeded output to repeat (engine build and model)."""
    digest = f"-{model_digest.removeprefix('sha256:')[:12]}" if model_digest else ""
    return f"llorch-{engine}-{version}{digest}"


@dataclass(slots=True)
class ChunkEncoder:
    """Writes one stream's chunks: the constant part of each is encoded once, each token's text per token.

    ``kind`` is ``"completion"`` (``text_completion`` chunks, ``choices[0].text``) or ``"chat"``
    (``chat.completion.chunk``, ``choices[0].delta.content``, the first delta carrying the role).
    """

    kind: Literal["completion", "chat"]
    id: str
    created: int
    model: str
    system_fingerprint: str
    include_usage: bool = False
    _head: bytes = field(init=False, default=b"")
    _tail: bytes = field(init=False, default=b"")
    _usage_key: bytes = field(init=False, default=b"")

    def __post_init__(self) -> None:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        common = json.dumps(
            {"id": self.id, "object": obj, "created": self.created, "model": self.model},
            ensure_ascii=False,
        )[:-1]
        fp = json.dumps(self.system_fingerprint)
        # A chunk whose usage is null when include_usage is on, as OpenAI sends them.
        self._usage_key = b',"usage":null' if self.include_usage else b""
        prefix = f'data: {common},"system_fingerprint":{fp},"choices":[{{"index":0,'
        if self.kind == "chat":
            self._head = (prefix + '"delta":{"content":').encode()
            self._tail = b'},"logprobs":null,"finish_reason":null}]' + self._usage_key + b"}\n\n"
        else:
            self._head = (prefix + '"text":').encode()
            self._tail = b',"logprobs":null,"finish_reason":null}]' + self._usage_key + b"}\n\n"

    def _obj(self) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
        }

    def _event(self, body: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

    def start(self) -> bytes:
        """The chat stream's first chunk (the assistant role); nothing for completions."""
        if self.kind != "chat":
            return b""
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        body = {**self._obj(), "choices": [choice]}
        if self.include_usage:
            body["usage"] = None
        return self._event(body)

    def tokens(self, texts: Sequence[str]) -> bytes:
        """One chunk per token text, written together (the relay coalesces a batch into one write)."""
        head, tail = self._head, self._tail
        return b"".join(head + json.dumps(t, ensure_ascii=False).encode() + tail for t in texts)

    def finish(self, finish_reason: str, usage: Usage | None, timing: Timing | None) -> bytes:
        """The last chunk (``finish_reason``), the usage chunk when asked for, and ``[DONE]``."""
        if self.kind == "chat":
            choice: dict[str, Any] = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}
        last: dict[str, Any] = {**self._obj(), "choices": [choice]}
        if self.include_usage:
            last["usage"] = None
        if timing is not None:
            last["llorch"] = timing.body()
        out = self._event(last)
        if self.include_usage and usage is not None:
            out += self._event({**self._obj(), "choices": [], "usage": usage.body()})
        return out + DONE


def completion_response(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage: Usage,
    system_fingerprint: str,
    timing: Timing | None = None,
) -> dict[str, Any]:
    """A non-streamed ``text_completion``."""
    body: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage.body(),
    }
    if timing is not None:
        body["llorch"] = timing.body()
    return body


def chat_response(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage: Usage,
    system_fingerprint: str,
    timing: Timing | None = None,
) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    message = {"role": "assistant", "content": text, "refusal": None}
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage.body(),
    }
    if timing is not None:
        body["llorch"] = timing.body()
    return body


def encode_vector(vector: Sequence[float], encoding_format: Literal["float", "base64"]) -> list[float] | str:
    """A vector as OpenAI sends it: a list of floats, or base64 of little-endian float32 (what the
    ``openai`` SDK asks for by default and decodes)."""
    if encoding_format == "float":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings_response(
    vectors: Sequence[Sequence[float]],
    *,
    model: str,
    prompt_tokens: int,
    encoding_format: Literal["float", "base64"],
    timing: Timing | None = None,
) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
        for i, v in enumerate(vectors)
    ]
    body: dict[str, Any] = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    if timing is not None:
        body["llorch"] = timing.body()
    return body


def models_response(model_refs: Sequence[str], *, created: int) -> dict[str, Any]:
    """``GET /v1/models``: one model per distinct ``model_ref``, in the order given."""
    seen = list(dict.fromkeys(model_refs))
    return {
        "object": "list",
        "data": [{"id": ref, "object": "model", "created": created, "owned_by": "llama-orch"} for ref in seen],
    }


# ---------------------------------------------------------------------------------------------
# Our errors in OpenAI's shape

_TYPE_BY_STATUS = {
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    429: "rate_limit_error",
}
_OPENAI_CODES = {
    ErrorCode.CTX_EXCEEDED: "context_length_exceeded",
    ErrorCode.UNKNOWN_MODEL: "model_not_found",
    ErrorCode.ADMISSION_REJECT: "rate_limit_exceeded",
    ErrorCode.QUEUE_FULL_DROP_LRU: "rate_limit_exceeded",
    ErrorCode.BUDGET_EXCEEDED: "insufficient_quota",
}
_PARAMS = {
    ErrorCode.UNKNOWN_MODEL: "model",
    ErrorCode.CTX_EXCEEDED: "messages",
    ErrorCode.MAX_TOKENS_EXCEEDED: "max_tokens",
    ErrorCode.DETERMINISM_UNSUPPORTED: HEADER_DETERMINISM,
}


def openai_status(code: ErrorCode) -> int:
    """The HTTP status of ``code`` at the front door: as the native API, except an unknown model is 404."""
    return 404 if code is ErrorCode.UNKNOWN_MODEL else ERROR_STATUS.get(code, 500)


def openai_error(error: OrchError | ErrorEnvelope) -> OpenAIError:
    """Our error (raised, or an envelope from an SSE ``error`` event) as the front door answers it."""
    code = error.code
    status = openai_status(code)
    kind = "server_error" if status >= 500 else _TYPE_BY_STATUS.get(status, "invalid_request_error")
    headers = {"x-should-retry": "true" if error.retriable else "false"}
    if error.retriable and error.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_ms / 1000)))
        headers["retry-after-ms"] = str(error.retry_after_ms)
    return OpenAIError(
        status,
        error.message,
        type=kind,
        code=_OPENAI_CODES.get(code),
        param=_PARAMS.get(code),
        llorch_code=code,
        headers=headers,
    )


__all__ = [
    "COMPLETIONS_DEFAULT_MAX_TOKENS",
    "DONE",
    "ChatCompletionRequest",
    "ChunkEncoder",
    "CompletionRequest",
    "EmbeddingRequest",
    "FrontDoorTask",
    "OpenAIError",
    "Request",
    "Timing",
    "Usage",
    "bad_request",
    "chat_response",
    "completion_response",
    "embeddings_response",
    "encode_vector",
    "fingerprint",
    "models_response",
    "openai_error",
    "openai_status",
    "parse_request",
    "sampler_profile_for",
    "to_task",
]
