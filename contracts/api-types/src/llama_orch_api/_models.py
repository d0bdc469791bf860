"""Wire models for the llama-orch HTTP API.

Every request, response, SSE event payload and error envelope that crosses the wire is one of
these models. The OpenAPI files in ``contracts/openapi/`` are authoritative; a test in the
orchestrator's suite fails when these models drift from them.

Requests forbid unknown fields (a typo is an error, not a silently ignored knob); responses and
events ignore unknown fields so that a newer server does not break an older client.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llama_orch_api._control import BudgetInfo, BudgetSpec, FeatureFlags, RateLimits, SamplerProfile
from llama_orch_api._numbers import Int

API_VERSION = "0.1.0"
"""The API version these models describe; equal to ``info.version`` in the OpenAPI files."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Priority(StrEnum):
    """Queue class. ``interactive`` tasks are dispatched before any ``batch`` task."""

    interactive = "interactive"
    batch = "batch"


class Determinism(StrEnum):
    """``strict``: same inputs and seed give byte-identical output, or the task is refused.

    ``best_effort``: the seed is passed to the engine, without a guarantee.
    """

    strict = "strict"
    best_effort = "best_effort"


class Workload(StrEnum):
    completion = "completion"
    chat = "chat"
    embedding = "embedding"


class ErrorCode(StrEnum):
    """The error taxonomy. The HTTP status for each code is in :data:`ERROR_STATUS`."""

    INVALID_PARAMS = "INVALID_PARAMS"
    UNKNOWN_ENGINE = "UNKNOWN_ENGINE"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"
    UNKNOWN_POOL = "UNKNOWN_POOL"
    CTX_EXCEEDED = "CTX_EXCEEDED"
    MAX_TOKENS_EXCEEDED = "MAX_TOKENS_EXCEEDED"
    DETERMINISM_UNSUPPORTED = "DETERMINISM_UNSUPPORTED"
    WORKLOAD_UNSUPPORTED = "WORKLOAD_UNSUPPORTED"
    TASK_EXISTS = "TASK_EXISTS"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    ADMISSION_REJECT = "ADMISSION_REJECT"
    QUEUE_FULL_DROP_LRU = "QUEUE_FULL_DROP_LRU"
    DEADLINE_UNMET = "DEADLINE_UNMET"
    POOL_UNREADY = "POOL_UNREADY"
    POOL_UNAVAILABLE = "POOL_UNAVAILABLE"
    WORKER_RESET = "WORKER_RESET"
    DECODE_TIMEOUT = "DECODE_TIMEOUT"
    ENGINE_ERROR = "ENGINE_ERROR"
    CANCELLED = "CANCELLED"
    INTERNAL = "INTERNAL"
    CONFLICT = "CONFLICT"
    UNTRUSTED_ARTIFACT = "UNTRUSTED_ARTIFACT"
    MODEL_DEPRECATED = "MODEL_DEPRECATED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    POOL_DRAINING = "POOL_DRAINING"
    RELOAD_FAILED = "RELOAD_FAILED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    POLICY_DENIED = "POLICY_DENIED"
    FETCH_FAILED = "FETCH_FAILED"
    ORCHESTRATOR_RESTARTED = "ORCHESTRATOR_RESTARTED"


ERROR_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_PARAMS: 400,
    ErrorCode.UNKNOWN_ENGINE: 400,
    ErrorCode.UNKNOWN_MODEL: 400,
    ErrorCode.UNKNOWN_POOL: 400,
    ErrorCode.CTX_EXCEEDED: 400,
    ErrorCode.MAX_TOKENS_EXCEEDED: 400,
    ErrorCode.DETERMINISM_UNSUPPORTED: 400,
    ErrorCode.WORKLOAD_UNSUPPORTED: 400,
    ErrorCode.TASK_EXISTS: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.ADMISSION_REJECT: 429,
    ErrorCode.QUEUE_FULL_DROP_LRU: 429,
    ErrorCode.DEADLINE_UNMET: 429,
    ErrorCode.POOL_UNREADY: 503,
    ErrorCode.POOL_UNAVAILABLE: 503,
    ErrorCode.WORKER_RESET: 503,
    ErrorCode.DECODE_TIMEOUT: 503,
    ErrorCode.ENGINE_ERROR: 502,
    ErrorCode.CANCELLED: 409,
    ErrorCode.INTERNAL: 500,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNTRUSTED_ARTIFACT: 403,
    ErrorCode.MODEL_DEPRECATED: 410,
    ErrorCode.BUDGET_EXCEEDED: 402,
    ErrorCode.POOL_DRAINING: 503,
    ErrorCode.RELOAD_FAILED: 422,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.POLICY_DENIED: 403,
    ErrorCode.FETCH_FAILED: 502,
    ErrorCode.ORCHESTRATOR_RESTARTED: 503,
}
"""HTTP status answered for each code when it is returned as a response (not as an SSE event)."""


# ---------------------------------------------------------------------------------------------
# Requests

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


class KvHint(_Request):
    """A hint about KV-cache reuse: ``reuse`` prefers the session's warm replica."""

    mode: Literal["reuse", "cold"] = "reuse"
    prefix_tokens: Int | None = Field(default=None, ge=0)


SAMPLER_PROFILE_NAMES = ("llorch/sampler@1", "llorch/greedy@1", "llorch/balanced@1", "llorch/creative@1")
# The profiles orchestratord knows (its core/_sampler.py; a test keeps the two equal). Stated in the
# JSON Schema only: the server refuses any other name itself, naming the known ones in its answer.


class ChatTurn(_Request):
    """One message of a ``chat`` task. The engine's own chat template renders the list."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=4_000_000)


class TaskRequest(_Request):
    """``POST /v1/tasks`` body (OC-CLI-2001)."""

    # Rules the server enforces, said in JSON Schema too so that a client or a fuzzer reading the
    # schema knows them: exactly one of prompt/inputs/messages, messages only with workload chat
    # (the validator below), and a budget only with a session (refused by the orchestrator with
    # the session's own message).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
                {"required": ["inputs"], "properties": {"inputs": {"type": "array"}}},
                {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
            ],
            # messages are a chat task's input: refused with any other workload (the validator)
            "allOf": [
                {
                    "if": {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
                    "then": {"required": ["workload"], "properties": {"workload": {"const": "chat"}}},
                }
            ],
            "if": {"required": ["budget"], "properties": {"budget": {"type": "object"}}},
            "then": {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}},
        },
    )

    task_id: Identifier | None = Field(
        default=None, description="Client-chosen id; generated when absent. Must be unique."
    )
    session_id: Identifier | None = Field(default=None, description="Groups tasks into a session.")
    workload: Workload = Workload.completion
    model_ref: str | None = Field(
        default=None, min_length=1, max_length=512, description="Model wanted; the pool's model when absent."
    )
    engine: str | None = Field(default=None, min_length=1, max_length=64)
    pool: Identifier | None = Field(default=None, description="Placement pin: run on this pool only.")
    ctx: Int | None = Field(default=None, ge=1, description="Context window the task needs, in tokens.")
    priority: Priority = Priority.interactive
    seed: Int | None = Field(default=None, ge=0, le=2**63 - 1)
    determinism: Determinism = Determinism.best_effort
    sampler_profile_version: str = Field(
        default="llorch/sampler@1", min_length=1, max_length=64, json_schema_extra={"enum": list(SAMPLER_PROFILE_NAMES)}
    )
    prompt: str | None = Field(default=None, max_length=4_000_000)
    inputs: list[str] | None = Field(default=None, min_length=1, max_length=1024)
    messages: list[ChatTurn] | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A chat task's conversation (workload 'chat'), rendered by the engine's chat template.",
    )
    stop: list[str] | None = Field(
        default=None, min_length=1, max_length=16, description="Texts that end generation where they appear."
    )
    max_tokens: Int = Field(default=128, ge=1)
    deadline_ms: Int | None = Field(
        default=None, ge=1, description="Relative: the task must start decoding within this many ms."
    )
    kv_hint: KvHint | None = None
    budget: BudgetSpec | None = Field(
        default=None, description="Budget of the session, set when this task creates it (OC-CLI-2402)."
    )

    @model_validator(mode="after")
    def _one_input(self) -> TaskRequest:
        given = sum(x is not None for x in (self.prompt, self.inputs, self.messages))
        if given != 1:
            raise ValueError("exactly one of 'prompt' or 'inputs' (or, for a chat task, 'messages') is required")
        if self.messages is not None and self.workload is not Workload.chat:
            raise ValueError("'messages' are the input of a chat task: set workload to 'chat'")
        return self

    def text(self) -> str:
        """The prompt as one string (``inputs`` joined by newlines; a chat's message contents, one per line,
        for sizing and records only: the engine renders ``messages`` with its own template)."""
        if self.prompt is not None:
            return self.prompt
        if self.messages is not None:
            return "\n".join(m.content for m in self.messages)
        return "\n".join(self.inputs or ())


# ---------------------------------------------------------------------------------------------
# Responses


class AdmissionResponse(_Response):
    """``202`` answer to ``POST /v1/tasks`` (OC-CLI-2005)."""

    task_id: str
    pool: str
    session_id: str | None = None
    queue_position: int = Field(ge=0)
    predicted_start_ms: int = Field(ge=0)
    backoff_ms: int = Field(ge=0)
    stream_url: str


class ErrorEnvelope(_Response):
    """Body of every 4xx/5xx answer, and payload of the SSE ``error`` event (OC-CLI-2801)."""

    code: ErrorCode
    message: str
    engine: str | None = None
    retriable: bool = False
    retry_after_ms: int | None = Field(default=None, ge=0)
    policy_label: str | None = None
    details: dict[str, object] | None = None
    correlation_id: str | None = None


class SessionInfo(_Response):
    """``GET /v1/sessions/{id}``."""

    session_id: str
    ttl_ms_remaining: int = Field(ge=0)
    turns: int = Field(ge=0)
    max_turns: int | None = None
    kv_warmth: bool
    pool: str | None = None
    replica: str | None = None
    tokens_used: int = Field(default=0, ge=0)
    budget: BudgetInfo | None = None


class PoolCapability(_Response):
    id: str
    engine: str
    engine_version: str
    model_ref: str
    ctx_max: int
    max_tokens: int
    slots: int
    replicas: int
    workloads: list[Workload]
    determinism: list[Determinism]
    queue_capacity: int
    queue_policy: Literal["reject", "drop-lru"]
    max_tokens_out: int = Field(description="Largest max_tokens a task may ask for (same as max_tokens).")
    concurrency: int = Field(description="Tasks decoded at once: replicas x slots.")
    price_per_token: float = Field(ge=0, description="Cost charged per output token against budgets.")
    rate_limits: RateLimits
    features: FeatureFlags


class Capabilities(_Response):
    """``GET /v1/capabilities`` (OC-CLI-2201/2202)."""

    api_version: str
    pools: list[PoolCapability]
    sampler_profiles: list[SamplerProfile] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# SSE event payloads (OC-CLI-2002, 2703)


class StartedEvent(_Response):
    """Emitted when the task takes a slot and decoding begins."""

    task_id: str
    pool: str
    replica: str
    queue_position: int = Field(ge=0, description="Position at admission.")
    predicted_start_ms: int = Field(ge=0, description="Predicted at admission.")
    waited_ms: int = Field(ge=0, description="Actual time from admission to start.")


class TokenEvent(_Response):
    t: str
    i: int = Field(ge=0)


class MetricsEvent(_Response):
    queue_position: int | None = None
    predicted_start_ms: int | None = None
    queue_depth: int = Field(ge=0)
    on_time_probability: float | None = Field(default=None, ge=0, le=1)
    kv_warmth: bool = False
    tokens_out: int = Field(default=0, ge=0)
    tokens_per_s: float | None = None
    budget_tokens_remaining: int | None = None
    budget_cost_remaining: float | None = None
    budget_wall_ms_remaining: int | None = None


class EndEvent(_Response):
    tokens_out: int = Field(ge=0)
    decode_time_ms: int = Field(ge=0)
    finish_reason: Literal["length", "stop"] = "length"
    prompt_tokens: int | None = Field(default=None, ge=0, description="The prompt's tokens, as the engine counted.")
    cached_tokens: int | None = Field(default=None, ge=0, description="Prompt tokens reused from the KV cache.")
    embeddings: list[list[float]] | None = Field(
        default=None, description="An embedding task's vectors, one per input, in input order."
    )


ErrorEvent = ErrorEnvelope
"""The SSE ``error`` event carries an :class:`ErrorEnvelope`."""

SSE_EVENTS: dict[str, type[BaseModel]] = {
    "started": StartedEvent,
    "token": TokenEvent,
    "metrics": MetricsEvent,
    "end": EndEvent,
    "error": ErrorEnvelope,
}
"""SSE event name → payload model."""
