"""LlamaCppEngine: what is particular to it. The cases every adapter meets (stream, cancel, every row
of its error table, against responses recorded from a real llama-server) are in test_conformance.py.

Here: it streams exactly what the mock engine's llama.cpp-format server generates, the request it
sends (prompt cache off for strict tasks), ``/props`` and health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from llama_orch.engines import EngineRequest, LlamaCppEngine, MockEngine, MockFaults, MockSettings, mock_tokens
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode
from tests.engines._fake import StartFake, collect, collect_until_error, refused_url, reply, req
from tests.engines._recorded import load, replay

StartMock = Callable[[MockSettings], Awaitable[str]]
Connect = Callable[[str], Awaitable[LlamaCppEngine]]

FAST = MockSettings(tokens_per_s=None, first_token_ms=0)
COMPLETION = "POST /completion"


@pytest.fixture
def connect(started: Callable[[LlamaCppEngine], Awaitable[LlamaCppEngine]]) -> Connect:
    async def _connect(base_url: str) -> LlamaCppEngine:
        return await started(LlamaCppEngine(base_url, slots=2, ctx_max=2048, version="b1234"))

    return _connect


# -- against the mock engine served over HTTP ------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(req(), id="default"),
        pytest.param(req(prompt="def f(x):\n    return 'ünïcode' 🙂", seed=0, max_tokens=64), id="unicode"),
        pytest.param(req(max_tokens=1, seed=2**63 - 1), id="one-token"),
        pytest.param(req(max_tokens=500, seed=3), id="long"),
    ],
)
async def test_streams_the_same_tokens_as_mock_engine(
    mock_engine_server: StartMock, connect: Connect, request_: EngineRequest
) -> None:
    engine = await connect(await mock_engine_server(FAST))
    in_process = [t async for batch in MockEngine(FAST).stream(request_) for t in batch]
    over_http = await collect(engine, request_)
    assert over_http == in_process == mock_tokens(request_)
    assert len(over_http) == request_.max_tokens


async def test_paced_stream_over_http(mock_engine_server: StartMock, connect: Connect) -> None:
    engine = await connect(await mock_engine_server(MockSettings(tokens_per_s=2000, first_token_ms=1)))
    assert await collect(engine, req(max_tokens=40)) == mock_tokens(req(max_tokens=40))


async def test_seedless_requests_are_not_reproducible_over_http(
    mock_engine_server: StartMock, connect: Connect
) -> None:
    # Without a seed the engine picks its own (best_effort): two identical requests may differ,
    # and with the mock they always do. A seed is what makes output reproducible.
    engine = await connect(await mock_engine_server(FAST))
    request_ = req(seed=None, max_tokens=40)
    assert await collect(engine, request_) != await collect(engine, request_)


async def test_fault_trigger_over_http(mock_engine_server: StartMock, connect: Connect) -> None:
    settings = FAST.model_copy(update={"faults": MockFaults(trigger="BOOM", error_after_tokens=0)})
    engine = await connect(await mock_engine_server(settings))
    assert await collect(engine, req(prompt="calm")) == mock_tokens(req(prompt="calm"))
    got, err = await collect_until_error(engine, req(prompt="BOOM"))
    assert (got, err.code) == ([], ErrorCode.ENGINE_ERROR)


async def test_concurrent_requests_beyond_slots(mock_engine_server: StartMock, connect: Connect) -> None:
    engine = await connect(await mock_engine_server(MockSettings(tokens_per_s=50, first_token_ms=0, slots=1)))
    streams = [engine.stream(req(prompt=f"p{i}", max_tokens=100_000)) for i in range(3)]
    results = await asyncio.gather(*(s.__anext__() for s in streams), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 2, results
    assert all(isinstance(e, EngineError) and e.code is ErrorCode.POOL_UNAVAILABLE for e in errors)
    for s in streams:
        await s.aclose()


async def test_health_and_props(mock_engine_server: StartMock, connect: Connect) -> None:
    engine = await connect(await mock_engine_server(MockSettings(slots=3, ctx_max=1024)))
    assert await engine.health() is True
    props = await engine.props()
    assert props["default_generation_settings"]["n_ctx"] == 1024
    assert props["total_slots"] == 3
    assert props["build_info"] == "mock-1"
    info = engine.describe()
    assert (info.engine, info.version, info.slots, info.ctx_max) == ("llamacpp", "b1234", 2, 2048)


async def test_props_when_nothing_listens(connect: Connect) -> None:
    engine = await connect(refused_url())
    with pytest.raises(EngineError) as info:
        await engine.props()
    assert (info.value.code, info.value.retriable) == (ErrorCode.POOL_UNAVAILABLE, True)


# -- the request, against a fake llama-server replaying a recorded stream -----------------------------


async def test_request_payload(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({COMPLETION: replay(load("llamacpp", "stream"))})
    engine = await connect(fake.base_url)
    await collect(engine, req(prompt="p1", max_tokens=2, seed=5))
    await collect(engine, req(prompt="p2", max_tokens=9, seed=None))
    first, second = fake.bodies(COMPLETION)
    assert first == {"prompt": "p1", "n_predict": 2, "stream": True, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
                     "cache_prompt": True, "seed": 5}  # fmt: skip
    assert second["n_predict"] == 9
    assert "seed" not in second
    assert all(s.headers["Connection"] == "close" for s in fake.seen)  # llama-server closes after a stream


async def test_strict_turns_the_prompt_cache_off(fake_server: StartFake, connect: Connect) -> None:
    # llama.cpp's logits differ between a prompt evaluated in one batch and one resumed from its
    # cache, so a strict task must not reuse a cached prefix; best-effort tasks keep the speed-up.
    fake = await fake_server({COMPLETION: replay(load("llamacpp", "stream"))})
    engine = await connect(fake.base_url)
    await collect(engine, req(determinism=Determinism.strict))
    await collect(engine, req(determinism=Determinism.best_effort))
    assert [body["cache_prompt"] for body in fake.bodies(COMPLETION)] == [False, True]


async def test_health_false_while_loading(fake_server: StartFake, connect: Connect) -> None:
    loading = load("llamacpp", "http-503-loading")
    fake = await fake_server({"GET /health": replay(loading)})
    engine = await connect(fake.base_url)
    assert await engine.health() is False
    fake.routes["GET /health"] = reply({"status": "ok"})
    assert await engine.health() is True
