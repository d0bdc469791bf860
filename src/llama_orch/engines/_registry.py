"""The engine registry: one place that maps an engine name to its settings and its adapter.

=============  =====================================  ==============================  ===================
engine         settings block (validated)              adapter                         workloads it can serve
=============  =====================================  ==============================  ===================
``mock``       :class:`~llama_orch.engines.MockSettings`  in-process :class:`MockEngine`,  completion, chat,
                                                       or its HTTP server at an        embedding
                                                       endpoint (llama.cpp wire)
``llamacpp``   :class:`LlamaCppSettings`               :class:`LlamaCppEngine`         completion, chat
                                                                                       (+ embedding [1]_)
``vllm``       :class:`VLLMSettings`                   :class:`VLLMEngine`             completion, chat; or embedding
``tgi``        :class:`TGISettings`                    :class:`TGIEngine`              completion, chat; or
                                                                                       embedding (TEI) [1]_
``triton``     :class:`TritonSettings`                 :class:`TritonEngine`           completion
``openai``     :class:`OpenAISettings`                 :class:`OpenAIEngine`           completion, chat; or embedding
=============  =====================================  ==============================  ===================

.. [1] ``embeddings: true``: the engine serves embeddings. A llama-server started with
   ``--embeddings`` still decodes completions and chat; for the others it means an embedding model,
   which serves embeddings only (a vLLM pooling model, a TEI server behind ``tgi``).

Every HTTP engine's block has the same core: ``endpoint`` (the engine's URL), ``api_key_env`` (the
*name* of the environment variable that holds the API key, read when the adapter starts; a key
written into the file is refused), ``model`` (the model's name on the engine), ``embeddings`` and
``timeouts``. Orchestratord's pools and the replicas pool-managerd hosts register are both built
here, by :func:`build_engine`.

>>> settings = parse_settings("vllm", {"endpoint": "http://gpu-box:8000", "model": "google/gemma-3-270m"})
>>> engine = build_engine("vllm", settings, ReplicaFacts(slots=8, ctx_max=8192))
>>> type(engine).__name__
'VLLMEngine'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llama_orch.engines._base import COMPLETION_ONLY, TEXT_WORKLOADS, Engine
from llama_orch.engines._http import BEST_EFFORT, EngineTimeouts, HTTPEngine
from llama_orch.engines.llamacpp import LlamaCppEngine
from llama_orch.engines.mock import MOCK_VERSION, MockEngine, MockSettings
from llama_orch.engines.openai import OpenAIEngine
from llama_orch.engines.tgi import TGIEngine
from llama_orch.engines.triton import TritonBackend, TritonEngine
from llama_orch.engines.vllm import VLLMEngine
from llama_orch.errors import ConfigError
from llama_orch_api import Determinism, Workload

EngineName = Literal["mock", "llamacpp", "vllm", "tgi", "triton", "openai"]
"""Every engine a pool can be configured with."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_INLINE_KEYS = ("api_key", "apikey", "key", "token", "api_token", "authorization")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutSettings(_Settings):
    """Seconds the adapter waits (a token stream is bounded by the pool's first-token and token timeouts)."""

    connect_s: float = Field(default=5.0, gt=0, le=600, description="To open a connection to the engine.")
    control_s: float = Field(default=10.0, gt=0, le=600, description="For health checks and metadata.")
    request_s: float = Field(
        default=120.0, gt=0, le=3600, description="For a request answered in one body (embeddings, templates)."
    )

    def timeouts(self) -> EngineTimeouts:
        return EngineTimeouts(self.connect_s, self.control_s, self.request_s)


class HTTPEngineSettings(_Settings):
    """What every HTTP engine's block has."""

    endpoint: str | None = Field(
        default=None, description="The engine's base URL (http or https); required unless the replica gives one."
    )
    api_key_env: str | None = Field(
        default=None,
        description="NAME of the environment variable holding the engine's API key (read at start, sent as "
        "'Authorization: Bearer'); the key itself never goes in the file.",
    )
    model: str | None = Field(
        default=None, min_length=1, max_length=256, description="The model's name on the engine; asked when null."
    )
    embeddings: bool = Field(
        default=False, description="The engine serves an embedding model (POST /v1/embeddings or equivalent)."
    )
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in _INLINE_KEYS:
                if key in data:
                    raise ValueError(
                        f"{key!r} is not accepted: never write a secret into the config; put it in an environment "
                        "variable and give that variable's NAME as 'api_key_env'"
                    )
        return data

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            # Say nothing of the value: it may be the key itself, pasted in the wrong place.
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (letters, digits, '_'; e.g. OPENAI_API_KEY), "
                "not the key"
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint {value!r} must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("endpoint must not carry credentials; use api_key_env")
        return value.rstrip("/")


class LlamaCppSettings(HTTPEngineSettings):
    """llama.cpp's ``llama-server``: the endpoint of a running one (managed replicas supply their own)."""


class VLLMSettings(HTTPEngineSettings):
    """``vllm serve``: the server root (``/v1`` may be given; it is dropped)."""

    stream_usage: bool = Field(default=True, description="Ask for the usage chunk (stream_options.include_usage).")


class TGISettings(HTTPEngineSettings):
    """Text Generation Inference (or, with ``embeddings: true``, text-embeddings-inference)."""


class TritonSettings(HTTPEngineSettings):
    """Triton Inference Server's generate extension."""

    model: str = Field(min_length=1, max_length=256, description="The Triton model to call (e.g. 'ensemble').")
    backend: TritonBackend = Field(default="tensorrtllm", description="The model's backend: its request fields.")
    model_version: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("embeddings")
    @classmethod
    def _no_embeddings(cls, value: bool) -> bool:
        if value:
            raise ValueError("the Triton adapter serves completions only (the generate extension has no embeddings)")
        return value


class OpenAISettings(HTTPEngineSettings):
    """Any OpenAI-compatible server: the API base, ``/v1`` included (``http://localhost:11434/v1``)."""

    chat: bool = Field(default=False, description="Send plain prompts as one user message (chat-only servers).")
    send_top_k: bool = Field(default=False, description="Send top_k (servers that accept it; OpenAI's API does not).")
    stream_usage: bool = Field(default=False, description="Ask for the usage chunk (stream_options.include_usage).")


@dataclass(frozen=True, slots=True)
class ReplicaFacts:
    """What the pool knows of one replica, beside the engine's own settings.

    ``endpoint`` (a managed or registered replica's URL) wins over the settings' ``endpoint``.
    """

    slots: int = 1
    ctx_max: int = 4096
    version: str = "unknown"
    determinism: frozenset[Determinism] = BEST_EFFORT
    endpoint: str | None = None


Builder = Callable[[Any, ReplicaFacts], Engine]


@dataclass(frozen=True, slots=True)
class EngineKind:
    """One engine: its settings model, how its adapter is built, and what it can serve."""

    name: EngineName
    settings: type[BaseModel]
    build: Builder
    workloads: frozenset[Workload]
    """The most it can serve; a built adapter says what it serves as configured (``describe().workloads``)."""
    managed: bool
    """Whether orchestratord and pool-managerd can run the engine's processes themselves."""


def _endpoint(name: str, settings: HTTPEngineSettings, facts: ReplicaFacts) -> str:
    endpoint = facts.endpoint or settings.endpoint
    if endpoint is None:
        raise ConfigError(f"engine {name!r} needs an endpoint (the running engine's URL)")
    return endpoint


def _timed(engine: HTTPEngine, settings: HTTPEngineSettings) -> HTTPEngine:
    engine.timeouts = settings.timeouts.timeouts()
    return engine


def _mock(settings: MockSettings, facts: ReplicaFacts) -> Engine:
    if facts.endpoint is not None:
        return LlamaCppEngine(
            facts.endpoint,
            engine_name="mock",
            slots=facts.slots,
            ctx_max=facts.ctx_max,
            version=MOCK_VERSION,
            determinism=facts.determinism,
            embeddings=True,  # the mock's HTTP server serves /v1/embeddings too
        )
    return MockEngine(settings)


def _llamacpp(settings: LlamaCppSettings, facts: ReplicaFacts) -> Engine:
    return _timed(
        LlamaCppEngine(
            _endpoint("llamacpp", settings, facts),
            slots=facts.slots,
            ctx_max=facts.ctx_max,
            version=facts.version,
            determinism=facts.determinism,
            embeddings=settings.embeddings,
            api_key_env=settings.api_key_env,
        ),
        settings,
    )


def _vllm(settings: VLLMSettings, facts: ReplicaFacts) -> Engine:
    return _timed(
        VLLMEngine(
            _endpoint("vllm", settings, facts),
            model=settings.model,
            api_key_env=settings.api_key_env,
            embeddings=settings.embeddings,
            stream_usage=settings.stream_usage,
            slots=facts.slots,
            ctx_max=facts.ctx_max,
            version=facts.version,
            determinism=facts.determinism,
        ),
        settings,
    )


def _tgi(settings: TGISettings, facts: ReplicaFacts) -> Engine:
    engine = TGIEngine(
        _endpoint("tgi", settings, facts),
        slots=facts.slots,
        ctx_max=facts.ctx_max,
        version=facts.version,
        determinism=facts.determinism,
        embeddings=settings.embeddings,
        api_key_env=settings.api_key_env,
    )
    engine.model_id = settings.model
    return _timed(engine, settings)


def _triton(settings: TritonSettings, facts: ReplicaFacts) -> Engine:
    return _timed(
        TritonEngine(
            _endpoint("triton", settings, facts),
            model=settings.model,
            backend=settings.backend,
            model_version=settings.model_version,
            api_key_env=settings.api_key_env,
            slots=facts.slots,
            ctx_max=facts.ctx_max,
            version=facts.version,
            determinism=facts.determinism,
        ),
        settings,
    )


def _openai(settings: OpenAISettings, facts: ReplicaFacts) -> Engine:
    return _timed(
        OpenAIEngine(
            _endpoint("openai", settings, facts),
            model=settings.model,
            api_key_env=settings.api_key_env,
            chat=settings.chat,
            send_top_k=settings.send_top_k,
            embeddings=settings.embeddings,
            stream_usage=settings.stream_usage,
            slots=facts.slots,
            ctx_max=facts.ctx_max,
            version=facts.version,
            determinism=facts.determinism,
        ),
        settings,
    )


_EMBEDDING = frozenset({Workload.embedding})

ENGINES: Mapping[EngineName, EngineKind] = {
    kind.name: kind
    for kind in (
        EngineKind("mock", MockSettings, _mock, frozenset(Workload), managed=False),
        EngineKind("llamacpp", LlamaCppSettings, _llamacpp, TEXT_WORKLOADS | _EMBEDDING, managed=True),
        EngineKind("vllm", VLLMSettings, _vllm, TEXT_WORKLOADS | _EMBEDDING, managed=False),
        EngineKind("tgi", TGISettings, _tgi, TEXT_WORKLOADS | _EMBEDDING, managed=False),
        EngineKind("triton", TritonSettings, _triton, COMPLETION_ONLY, managed=False),
        EngineKind("openai", OpenAISettings, _openai, TEXT_WORKLOADS | _EMBEDDING, managed=False),
    )
}
"""Every engine by name; the keys are exactly :data:`EngineName`."""

assert set(ENGINES) == set(get_args(EngineName))


def engine_kind(name: str) -> EngineKind:
    """The registry entry for ``name``; a :class:`ConfigError` naming the known engines otherwise."""
    kind = ENGINES.get(name)  # type: ignore[call-overload]
    if kind is None:
        raise ConfigError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    assert isinstance(kind, EngineKind)
    return kind


def parse_settings(name: str, raw: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """``raw`` validated as engine ``name``'s settings block (its defaults when ``None``).

    Raises :class:`ConfigError` listing every problem, each with its field path.
    """
    model = engine_kind(name).settings
    if isinstance(raw, model):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump(exclude_unset=True)
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '<block>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"engine {name!r} settings are invalid:\n" + "\n".join(lines)) from None


def build_engine(name: str, settings: BaseModel | Mapping[str, Any] | None, facts: ReplicaFacts) -> Engine:
    """A new (not yet started) adapter for one replica of engine ``name``."""
    kind = engine_kind(name)
    return kind.build(parse_settings(name, settings), facts)


__all__ = [
    "ENGINES",
    "EngineKind",
    "EngineName",
    "HTTPEngineSettings",
    "LlamaCppSettings",
    "OpenAISettings",
    "ReplicaFacts",
    "TGISettings",
    "TimeoutSettings",
    "TritonSettings",
    "VLLMSettings",
    "build_engine",
    "engine_kind",
    "parse_settings",
]
