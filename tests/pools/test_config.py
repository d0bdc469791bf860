"""Pool configuration of every engine (``pools/_config.py``, built by ``pools/_build.py``): each engine's
block validated through the engine registry, workloads checked against what the engine can serve,
and a pool of each remote engine serving a real task through orchestratord against a fake engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from llama_orch.engines import LlamaCppEngine, MockEngine, OpenAIEngine, TGIEngine, TritonEngine, VLLMEngine
from llama_orch.pools import PoolConfig, build_engine
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import Workload
from tests.conftest import Serve, read_stream
from tests.engines._fake import DONE, FakeServer, Handler, completion_chunk, launch, reply, sse, sse_event
from tests.server.test_app import submit


@pytest.fixture
async def fake_engine() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[FakeServer]]]:
    """A fake engine server on 127.0.0.1 (the adapter tests' programmable fake), stopped after the test."""
    runners: list[web.AppRunner] = []

    async def _start(routes: dict[str, Handler]) -> FakeServer:
        fake, runner = await launch(routes)
        runners.append(runner)
        return fake

    yield _start
    for runner in runners:
        await runner.cleanup()


def pool(**fields: Any) -> PoolConfig:
    fields.setdefault("id", "p")
    return PoolConfig.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "adapter"),
    [
        ({"engine": "vllm", "endpoint": "http://gpu:8000", "vllm": {"model": "m"}}, VLLMEngine),
        ({"engine": "vllm", "vllm": {"endpoint": "http://gpu:8000"}}, VLLMEngine),
        ({"engine": "tgi", "endpoint": "http://gpu:8080"}, TGIEngine),
        ({"engine": "triton", "endpoint": "http://gpu:8000", "triton": {"model": "ensemble"}}, TritonEngine),
        (
            {"engine": "openai", "openai": {"endpoint": "http://localhost:11434/v1", "model": "gemma3:270m"}},
            OpenAIEngine,
        ),
        ({"engine": "llamacpp", "endpoint": "http://box:8081"}, LlamaCppEngine),
        ({"engine": "mock"}, MockEngine),
        ({"engine": "mock", "endpoint": "http://127.0.0.1:9"}, LlamaCppEngine),
    ],
)
def test_every_engine_is_configurable(fields: dict[str, Any], adapter: type) -> None:
    config = pool(**fields)
    engine = build_engine(config)
    assert type(engine) is adapter
    assert engine.describe().engine == config.engine
    if config.engine not in ("mock", "llamacpp"):
        assert config.endpoint == getattr(config, config.engine).endpoint  # one endpoint, wherever it was given


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"engine": "ollama"}, "'vllm', 'tgi', 'triton' or 'openai'"),
        ({"engine": "vllm"}, "needs an endpoint"),
        ({"engine": "triton", "endpoint": "http://h"}, "needs a 'triton' block"),
        ({"engine": "vllm", "endpoint": "http://a", "vllm": {"endpoint": "http://b"}}, "two different endpoints"),
        ({"engine": "tgi", "endpoint": "http://h", "vllm": {"model": "m"}}, "a 'vllm' block is for engine 'vllm'"),
        ({"engine": "openai", "endpoint": "http://h/v1", "openai": {"api_key": "sk-x"}}, "never write a secret"),
        ({"engine": "openai", "endpoint": "http://h/v1", "openai": {"api_key_env": "sk-x"}}, "NAME of an environment"),
        ({"engine": "triton", "endpoint": "http://h", "triton": {"model": "e"}, "workloads": ["chat"]}, "cannot serve"),
        ({"engine": "vllm", "endpoint": "http://h", "workloads": ["embedding"]}, "vllm.embeddings: true"),
    ],
)
def test_bad_engine_configs_are_refused(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        pool(**fields)
    # What orchestratord's config loader prints: each error's message, never the input it was given.
    messages = " ".join(e["msg"] for e in info.value.errors())
    assert says in messages
    assert "sk-x" not in messages


def test_workloads_follow_the_engine_by_default() -> None:
    assert pool(engine="triton", endpoint="http://h", triton={"model": "e"}).workloads == [Workload.completion]
    assert pool(engine="vllm", endpoint="http://h", vllm={"embeddings": True}).workloads == [Workload.embedding]
    llama = pool(engine="llamacpp", llamacpp={"embeddings": True})
    assert llama.workloads == [Workload.completion, Workload.chat, Workload.embedding]
    assert pool(engine="vllm", endpoint="http://h").workloads == [Workload.completion, Workload.chat]


async def test_a_pool_of_each_remote_engine_serves_tasks(
    fake_engine: Callable[[dict[str, Handler]], Awaitable[FakeServer]], serve: Serve
) -> None:
    fake = await fake_engine(
        {
            "POST /v1/completions": sse(completion_chunk("vl"), completion_chunk("lm", "stop"), DONE),
            "GET /v1/models": reply({"data": [{"id": "m", "max_model_len": 2048}]}),
            "GET /version": reply({"version": "0.9.0"}),
            "GET /health": reply({}),
            "POST /generate_stream": sse(sse_event({"token": {"text": "tg"}, "generated_text": "tg"})),
            "POST /v2/models/ensemble/generate_stream": sse(sse_event({"text_output": "tr"})),
        }
    )
    pools = [
        {"id": "vllm", "engine": "vllm", "endpoint": fake.base_url, "model_ref": "m-vllm", "vllm": {"model": "m"}},
        {"id": "tgi", "engine": "tgi", "endpoint": fake.base_url, "model_ref": "m-tgi"},
        {"id": "triton", "engine": "triton", "endpoint": fake.base_url, "model_ref": "m-triton",
         "triton": {"model": "ensemble"}},
        {"id": "openai", "engine": "openai", "model_ref": "m-openai",
         "openai": {"endpoint": f"{fake.base_url}/v1", "model": "m"}},
    ]  # fmt: skip
    base = await serve(OrchestratorConfig.model_validate({"pools": pools, "server": {"heartbeat_s": 0.2}}))
    want = {"vllm": "vllm", "tgi": "tg", "triton": "tr", "openai": "vllm"}
    async with aiohttp.ClientSession() as http:
        for pool_id, text in want.items():
            task = await submit(http, base, pool=pool_id, max_tokens=4)
            events = await read_stream(http, base, task["task_id"])
            assert events[-1].event == "end", (pool_id, events[-1])
            assert "".join(e.data["t"] for e in events if e.event == "token") == text
        async with http.get(f"{base}/v1/capabilities") as resp:
            caps = await resp.json()
    engines = {p["id"]: p["engine"] for p in caps["pools"]}
    assert engines == {"vllm": "vllm", "tgi": "tgi", "triton": "triton", "openai": "openai"}
    assert {p["id"]: p["workloads"] for p in caps["pools"]}["triton"] == ["completion"]
    assert not any(p["features"]["embeddings"] for p in caps["pools"])  # none of these pools serves them
