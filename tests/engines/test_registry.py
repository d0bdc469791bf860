"""The engine registry (``engines/_registry.py``): every engine name maps to a validated settings block and
an adapter that really streams, and bad settings are refused with the field that is wrong."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import BaseModel

from llama_orch.engines import (
    ENGINES,
    EngineName,
    LlamaCppEngine,
    MockEngine,
    MockSettings,
    OpenAIEngine,
    ReplicaFacts,
    TGIEngine,
    TritonEngine,
    VLLMEngine,
    build_engine,
    engine_kind,
    parse_settings,
)
from llama_orch.errors import ConfigError, EngineError
from llama_orch_api import Determinism, ErrorCode, Workload
from tests.engines._fake import DONE, StartFake, collect, completion_chunk, req, sse, sse_event

FACTS = ReplicaFacts(slots=3, ctx_max=2048, version="v9", determinism=frozenset({Determinism.best_effort}))


def test_every_engine_name_is_registered_once() -> None:
    assert list(ENGINES) == list(get_args(EngineName)) == ["mock", "llamacpp", "vllm", "tgi", "triton", "openai"]
    for name, kind in ENGINES.items():
        assert kind.name == name
        assert issubclass(kind.settings, BaseModel)
        assert Workload.completion in kind.workloads
    assert [n for n, k in ENGINES.items() if k.managed] == ["llamacpp"]


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'ollama'; known engines: mock, llamacpp, vllm"):
        engine_kind("ollama")
    with pytest.raises(ConfigError, match="unknown engine"):
        build_engine("", None, FACTS)


@pytest.mark.parametrize(
    ("name", "settings", "adapter"),
    [
        ("mock", None, MockEngine),
        ("llamacpp", {"endpoint": "http://127.0.0.1:1"}, LlamaCppEngine),
        ("vllm", {"endpoint": "http://127.0.0.1:1/v1", "model": "m"}, VLLMEngine),
        ("tgi", {"endpoint": "http://127.0.0.1:1"}, TGIEngine),
        ("triton", {"endpoint": "http://127.0.0.1:1", "model": "ensemble", "backend": "vllm"}, TritonEngine),
        ("openai", {"endpoint": "https://api.example.test/v1", "model": "gpt-x", "api_key_env": "KEY"}, OpenAIEngine),
    ],
)
def test_each_engine_builds_its_adapter(name: str, settings: dict[str, Any] | None, adapter: type) -> None:
    engine = build_engine(name, settings, FACTS)
    assert type(engine) is adapter
    info = engine.describe()
    if name != "mock":
        assert (info.engine, info.slots, info.ctx_max, info.version) == (name, 3, 2048, "v9")
    assert info.workloads <= engine_kind(name).workloads


def test_the_replica_endpoint_wins_and_mock_over_http_speaks_llamacpp() -> None:
    engine = build_engine("vllm", {"endpoint": "http://a:1", "model": "m"}, ReplicaFacts(endpoint="http://b:2"))
    assert isinstance(engine, VLLMEngine) and engine.server_url == "http://b:2"
    over_http = build_engine("mock", MockSettings(), ReplicaFacts(endpoint="http://127.0.0.1:9"))
    assert isinstance(over_http, LlamaCppEngine)
    assert over_http.describe().engine == "mock"


def test_timeouts_and_embeddings_reach_the_adapter() -> None:
    settings = {"endpoint": "http://h:1", "embeddings": True, "timeouts": {"connect_s": 1.5, "request_s": 30}}
    engine = build_engine("llamacpp", settings, FACTS)
    assert isinstance(engine, LlamaCppEngine)
    assert (engine.timeouts.connect_s, engine.timeouts.control_s, engine.timeouts.request_s) == (1.5, 10.0, 30.0)
    assert engine.describe().workloads == {Workload.completion, Workload.chat, Workload.embedding}
    tei = build_engine("tgi", {"endpoint": "http://h:1", "embeddings": True}, FACTS)
    assert tei.describe().workloads == {Workload.embedding}
    vllm = build_engine("vllm", {"endpoint": "http://h:1"}, FACTS)
    assert isinstance(vllm, VLLMEngine) and vllm.stream_usage is True  # the registry's default for vLLM


@pytest.mark.parametrize(
    ("name", "settings", "says"),
    [
        ("openai", {"endpoint": "http://h/v1", "api_key": "sk-live-123"}, "never write a secret"),
        ("vllm", {"endpoint": "http://h", "token": "abc"}, "never write a secret"),
        ("openai", {"endpoint": "http://h/v1", "api_key_env": "sk-live-123"}, "NAME of an environment variable"),
        ("openai", {"endpoint": "http://h/v1", "api_key_env": "1ABC"}, "NAME of an environment variable"),
        ("tgi", {"endpoint": "ftp://h"}, "must be an http"),
        ("tgi", {"endpoint": "http://"}, "must be an http"),
        ("vllm", {"endpoint": "http://user:pw@h:8000"}, "must not carry credentials"),
        ("triton", {"endpoint": "http://h"}, "model"),
        ("triton", {"endpoint": "http://h", "model": "m", "backend": "onnx"}, "backend"),
        ("triton", {"endpoint": "http://h", "model": "m", "embeddings": True}, "completions only"),
        ("llamacpp", {"endpoint": "http://h", "timeouts": {"connect_s": 0}}, "timeouts.connect_s"),
        ("llamacpp", {"endpoint": "http://h", "tmeouts": {}}, "tmeouts"),
        ("mock", {"tokens_per_s": -1}, "tokens_per_s"),
    ],
)
def test_bad_settings_are_refused_with_the_field(name: str, settings: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=f"engine '{name}' settings are invalid") as info:
        parse_settings(name, settings)
    assert says in str(info.value)
    # A key pasted in the wrong place is never repeated back.
    assert "sk-live-123" not in str(info.value)


def test_an_engine_without_an_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'vllm' needs an endpoint"):
        build_engine("vllm", {"model": "m"}, FACTS)


async def test_the_api_key_is_read_from_the_named_variable(
    fake_server: StartFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await fake_server({"POST /v1/completions": sse(completion_chunk("ok", "stop"), DONE)})
    engine = build_engine(
        "openai", {"endpoint": f"{fake.base_url}/v1", "model": "m", "api_key_env": "LLORCH_REG_KEY"}, FACTS
    )
    monkeypatch.delenv("LLORCH_REG_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$LLORCH_REG_KEY is not set"):
        await engine.start()
    monkeypatch.setenv("LLORCH_REG_KEY", "sk-reg-0123")
    async with engine:
        assert await collect(engine, req()) == ["ok"]
    assert fake.seen[0].headers["Authorization"] == "Bearer sk-reg-0123"


async def test_built_adapters_stream_from_their_engines(fake_server: StartFake) -> None:
    fake = await fake_server(
        {
            "POST /completion": sse(
                sse_event({"content": "a", "stop": False}), sse_event({"content": "", "stop": True})
            ),
            "POST /generate_stream": sse(sse_event({"token": {"text": "b"}, "generated_text": "b"})),
            "POST /v2/models/ensemble/generate_stream": sse(sse_event({"text_output": "c"})),
            "POST /v1/completions": sse(completion_chunk("d", "stop"), DONE),
        }
    )
    cases = {
        "llamacpp": ({}, ["a"]),
        "tgi": ({}, ["b"]),
        "triton": ({"model": "ensemble"}, ["c"]),
        "vllm": ({"model": "m"}, ["d"]),
        "openai": ({"model": "m", "endpoint": f"{fake.base_url}/v1"}, ["d"]),
    }
    for name, (extra, want) in cases.items():
        engine = build_engine(name, {"endpoint": fake.base_url, **extra}, FACTS)
        async with engine:
            assert await collect(engine, req()) == want, name
    mock = build_engine("mock", {"tokens_per_s": None, "first_token_ms": 0}, FACTS)
    assert len(await collect(mock, req(max_tokens=5))) == 5


async def test_a_registry_built_adapter_still_refuses_what_it_does_not_serve(fake_server: StartFake) -> None:
    fake = await fake_server({})
    engine = build_engine("openai", {"endpoint": f"{fake.base_url}/v1", "model": "m"}, FACTS)
    async with engine:
        with pytest.raises(EngineError) as info:
            await engine.embed(["x"])
    assert info.value.code is ErrorCode.WORKLOAD_UNSUPPORTED
