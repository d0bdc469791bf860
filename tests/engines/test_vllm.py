"""VLLMEngine: what is particular to it. The cases every adapter meets (stream, cancel, every row
of its error table, against responses in vLLM's wire format) are in test_conformance.py.

Here: the sampling fields it always sends (so ``generation_config.json`` defaults never change a
seeded run), the server root it accepts with or without ``/v1``, ``fetch_info`` and health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from llama_orch.engines import VLLMEngine
from tests.engines._fake import (
    DONE,
    StartFake,
    collect,
    completion_chunk,
    reply,
    req,
    sse,
)

COMPLETIONS = "POST /v1/completions"
MODEL = "google/gemma-3-270m"

Connect = Callable[..., Awaitable[VLLMEngine]]


@pytest.fixture
def connect(started: Callable[[VLLMEngine], Awaitable[VLLMEngine]]) -> Connect:
    async def _connect(base_url: str, **options: Any) -> VLLMEngine:
        return await started(VLLMEngine(base_url, **{"model": MODEL, **options}))

    return _connect


@pytest.mark.parametrize(
    ("request_kw", "sampling"),
    [
        pytest.param(
            {"seed": 42, "temperature": 0.8, "top_p": 0.95, "top_k": 50},
            {"seed": 42, "temperature": 0.8, "top_p": 0.95, "top_k": 50},
            id="sampled",
        ),
        # Greedy, top_k disabled as -1; every field sent so generation_config defaults never apply.
        pytest.param({"seed": 0}, {"seed": 0, "temperature": 0.0, "top_p": 1.0, "top_k": -1}, id="greedy"),
        pytest.param({"seed": None}, {"temperature": 0.0, "top_p": 1.0, "top_k": -1}, id="no-seed"),
    ],
)
async def test_request_payload(
    fake_server: StartFake, connect: Connect, request_kw: dict[str, Any], sampling: dict[str, Any]
) -> None:
    fake = await fake_server({COMPLETIONS: sse(completion_chunk("a", "stop"), DONE)})
    engine = await connect(fake.base_url)
    await collect(engine, req(prompt="p", max_tokens=12, **request_kw))
    (body,) = fake.bodies(COMPLETIONS)
    assert body == {"model": MODEL, "prompt": "p", "max_tokens": 12, "stream": True, **sampling}


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_health_describe_and_fetch_info(fake_server: StartFake, connect: Connect, suffix: str) -> None:
    models = {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "owned_by": "vllm", "root": MODEL, "max_model_len": 32768}],
    }
    fake = await fake_server(
        {"GET /health": reply(None), "GET /v1/models": reply(models), "GET /version": reply({"version": "0.10.1"})}
    )
    engine = await connect(fake.base_url + suffix, model=None, slots=8, ctx_max=2048)
    assert await engine.health() is True
    assert (engine.describe().engine, engine.describe().ctx_max, engine.describe().slots) == ("vllm", 2048, 8)
    info = await engine.fetch_info()
    assert (info.version, info.ctx_max, info.slots) == ("0.10.1", 32768, 8)
    assert engine.describe() == info
    assert engine.model == MODEL


@pytest.mark.parametrize("status", [500, 503])
async def test_health_false(fake_server: StartFake, connect: Connect, status: int) -> None:
    fake = await fake_server({"GET /health": reply(None, status)})
    engine = await connect(fake.base_url)
    assert await engine.health() is False
