"""The OpenAI-compatible front door (``server/_openai_routes.py``) with OpenAI's own Python SDK as the
client, against a real orchestratord on loopback serving the mock engine: models, completions and chat
(streamed and whole, ``include_usage``), embeddings (float and the SDK's default base64), the
``X-Llorch-*`` headers both ways, the same queue and sessions as ``POST /v1/tasks``, and every error
raised as the SDK's exception for it, retried (or not) as the server advises."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from llama_orch.engines import EngineRequest, MockSettings, mock_embedding, mock_tokens
from llama_orch.engines._base import ChatMessage
from llama_orch.engines.mock import MockFaults
from llama_orch.server._openai_routes import ROUTES
from llama_orch.server.config import OrchestratorConfig, QueueConfig
from llama_orch_api import API_VERSION
from tests.conftest import Serve, fast_config

MODEL = "mock:tiny"
FAST = MockSettings(tokens_per_s=2000, first_token_ms=1, slots=2, embedding_dim=8)

Client = Callable[..., Awaitable[openai.AsyncOpenAI]]


@pytest.fixture
async def front(serve: Serve) -> AsyncIterator[Callable[..., Awaitable[tuple[str, openai.AsyncOpenAI]]]]:
    """orchestratord on loopback (a mock pool) and an ``openai.AsyncOpenAI`` pointed at its ``/v1``."""
    clients: list[openai.AsyncOpenAI] = []

    async def _start(config: OrchestratorConfig | None = None, **client_kw: Any) -> tuple[str, openai.AsyncOpenAI]:
        base = await serve(config or fast_config(workloads=["completion", "chat", "embedding"], mock=FAST))
        client_kw.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", timeout=30, **client_kw)
        clients.append(client)
        return base, client

    yield _start
    for client in clients:
        await client.close()


def seeded(prompt: str, max_tokens: int, seed: int) -> list[str]:
    return mock_tokens(EngineRequest("t", prompt, max_tokens, seed=seed))


async def test_models_are_the_pools_model_refs(front: Any) -> None:
    _, client = await front()
    assert [m.id for m in (await client.models.list()).data] == [MODEL]


async def test_completion_whole_and_streamed_give_the_engines_tokens(front: Any) -> None:
    _, client = await front()
    whole = await client.completions.create(model=MODEL, prompt="Once upon", max_tokens=6, seed=3)
    assert whole.choices[0].text == "".join(seeded("Once upon", 6, 3))
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 6
    assert whole.system_fingerprint == "llorch-mock-mock-1"
    stream = await client.completions.create(model=MODEL, prompt="Once upon", max_tokens=6, seed=3, stream=True)
    texts = [c.choices[0].text async for c in stream if c.choices]
    assert "".join(texts) == whole.choices[0].text


async def test_chat_streams_with_usage_and_seeded_repeats_are_identical(front: Any) -> None:
    _, client = await front()
    messages: Any = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    want = mock_tokens(
        EngineRequest("t", "", 5, seed=11, messages=(ChatMessage("system", "Be terse."), ChatMessage("user", "Hi")))
    )
    runs = []
    for _ in range(2):
        stream = await client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=5, seed=11, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 5
        runs.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert runs[0] == runs[1] == "".join(want)
    whole = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, seed=11)
    assert whole.choices[0].message.content == runs[0]
    extra = whole.model_extra or {}
    assert extra["llorch"]["determinism"] == "strict"  # seeded, and the mock offers strict
    assert extra["llorch"]["queue_position"] == 0 and "ttft_ms" in extra["llorch"]


async def test_headers_both_ways_and_the_native_session(front: Any) -> None:
    base, client = await front()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=3,
        temperature=0.7,
        extra_headers={"X-Llorch-Priority": "batch", "X-Llorch-Session": "agent-1", "X-Correlation-Id": "cid-42"},
    )
    assert raw.headers["X-Llorch-Queue-Position"] == "0"
    assert int(raw.headers["X-Llorch-Predicted-Start-Ms"]) >= 0
    assert raw.headers["X-Correlation-Id"] == "cid-42"
    answer = raw.parse()
    assert (answer.model_extra or {})["llorch"]["sampler_profile"] == "llorch/balanced@1"
    async with aiohttp.ClientSession() as http, http.get(f"{base}/v1/sessions/agent-1") as resp:
        session = await resp.json()
    assert session["turns"] == 1  # the same sessions as POST /v1/tasks


async def test_embeddings_float_and_the_sdks_default_base64(front: Any) -> None:
    base, client = await front()
    default = await client.embeddings.create(model=MODEL, input=["alpha", "beta"])  # the SDK asks for base64
    assert [d.embedding for d in default.data] == [
        pytest.approx(mock_embedding("alpha", 8), rel=1e-6),
        pytest.approx(mock_embedding("beta", 8), rel=1e-6),
    ]
    async with aiohttp.ClientSession() as http, http.get(f"{base}/v1/capabilities") as resp:
        (pool,) = (await resp.json())["pools"]
    assert pool["features"]["embeddings"] is True  # true only where a pool serves them
    floats = await client.embeddings.create(model=MODEL, input="alpha", encoding_format="float")
    assert floats.data[0].embedding == mock_embedding("alpha", 8)
    assert floats.usage.prompt_tokens == 1


async def test_embeddings_of_a_pool_without_them_are_400(front: Any) -> None:
    base, client = await front(fast_config(mock=FAST))  # workloads: completion, chat
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model=MODEL, input="x")
    assert info.value.code == "WORKLOAD_UNSUPPORTED"
    async with aiohttp.ClientSession() as http, http.get(f"{base}/v1/capabilities") as resp:
        (pool,) = (await resp.json())["pools"]
    assert pool["features"]["embeddings"] is False and "embedding" not in pool["workloads"]


async def test_bad_requests_raise_the_sdks_exceptions(front: Any) -> None:
    _, client = await front()
    with pytest.raises(openai.NotFoundError) as nf:
        await client.completions.create(model="gpt-4", prompt="x")
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await client.completions.create(model=MODEL, prompt="x", n=2)
    assert bad.value.param == "n"
    with pytest.raises(openai.BadRequestError) as too_many:
        await client.completions.create(model=MODEL, prompt="x", max_tokens=10**6)
    assert too_many.value.code == "MAX_TOKENS_EXCEEDED"
    with pytest.raises(openai.BadRequestError) as header:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], extra_headers={"X-Llorch-Priority": "now"}
        )
    assert header.value.param == "X-Llorch-Priority"
    with pytest.raises(openai.APIStatusError) as big:
        await client.completions.create(model=MODEL, prompt="x" * 2_000_000)
    assert big.value.status_code == 413
    assert big.value.body["llorch_code"] == "PAYLOAD_TOO_LARGE"  # type: ignore[index]


async def test_an_error_mid_stream_reaches_the_sdk(front: Any) -> None:
    faulty = FAST.model_copy(update={"faults": MockFaults(error_after_tokens=2)})
    _, client = await front(fast_config(mock=faulty))
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=8, stream=True
    )
    got: list[str] = []

    async def read() -> None:
        async for chunk in stream:
            got.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError, match="injected error"):
        await read()
    assert len([t for t in got if t]) == 2


async def test_a_draining_pool_is_503_with_our_code(front: Any) -> None:
    base, client = await front()
    async with aiohttp.ClientSession() as http, http.post(f"{base}/v1/pools/default/drain", json={}) as resp:
        assert resp.status in (200, 202), await resp.text()
    with pytest.raises(openai.InternalServerError) as info:
        await client.completions.create(model=MODEL, prompt="x")
    assert info.value.status_code == 503
    assert info.value.body["llorch_code"] == "POOL_DRAINING"  # type: ignore[index]
    assert info.value.response.headers["x-should-retry"] == "true"  # ours says retriable: a reload may come


async def test_queue_full_is_429_with_retry_after_and_the_sdk_retries_into_the_queue(front: Any) -> None:
    slow = MockSettings(tokens_per_s=40, first_token_ms=1, slots=1)
    config = fast_config(mock=slow, queue=QueueConfig(capacity=1))
    statuses: list[int] = []

    async def record(response: Any) -> None:
        statuses.append(response.status_code)

    http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [record]})
    base, client = await front(config, max_retries=5, http_client=http_client)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # one running, one queued: the same queue the native API fills is full
            async with http.post(f"{base}/v1/tasks", json={"prompt": "p", "max_tokens": 8}) as resp:
                assert resp.status == 202
        async with http.post(f"{base}/v1/completions", json={"model": MODEL, "prompt": "x"}) as resp:
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.headers["x-should-retry"] == "true"
            assert (await resp.json())["error"]["type"] == "rate_limit_error"
    # The SDK waits as Retry-After / retry-after-ms advise and tries again until the queue has room.
    answer = await client.completions.create(model=MODEL, prompt="x", max_tokens=2)
    assert answer.choices[0].text
    assert statuses[0] == 429 and statuses[-1] == 200, statuses
    statuses.clear()
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(f"{base}/v1/tasks", json={"prompt": "p", "max_tokens": 8}) as resp:
                assert resp.status == 202
    with pytest.raises(openai.RateLimitError):
        await client.with_options(max_retries=0).completions.create(model=MODEL, prompt="x")
    assert statuses == [429]


def test_the_contract_lists_exactly_the_served_front_door_operations() -> None:
    spec_path = Path(__file__).resolve().parents[2] / "contracts" / "openapi" / "openai.yaml"
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    validate_openapi(spec)
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert documented == {(method, path) for method, path, _ in ROUTES}
    assert spec["info"]["version"] == API_VERSION
