"""MockEngine: deterministic output, exact token counts, custom handlers and injected faults.

Nothing here asserts wall-clock timing. The one timing-shaped test (slow start and pacing) runs
the mock on a fake clock; the hang test only checks that a stream hangs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.engines import EngineRequest, MockEngine, MockFaults, MockSettings, mock_tokens
from llama_orch.engines import mock as mock_module
from llama_orch_api import Determinism, ErrorCode
from tests.engines._fake import batches, collect_until_error

FAST = MockSettings(tokens_per_s=None, first_token_ms=0)


def req(
    prompt: str = "hello",
    max_tokens: int = 16,
    seed: int | None = 7,
    task_id: str = "t1",
    sampler_profile: str = "llorch/sampler@1",
) -> EngineRequest:
    return EngineRequest(task_id, prompt, max_tokens, seed=seed, sampler_profile=sampler_profile)


async def tokens(engine: MockEngine, request: EngineRequest) -> list[str]:
    return [t for batch in await batches(engine, request) for t in batch]


# --------------------------------------------------------------------------------------------
# Determinism and length


async def test_same_inputs_same_tokens_across_engines_and_task_ids() -> None:
    first = await tokens(MockEngine(FAST), req(task_id="a"))
    second = await tokens(MockEngine(FAST), req(task_id="b"))
    assert first == second
    assert first == mock_tokens(req())
    assert len(set(first)) > 1, "output should not be one token repeated"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(req(seed=8), id="seed"),
        pytest.param(req(prompt="hello!"), id="prompt"),
        pytest.param(req(sampler_profile="llorch/sampler@2"), id="sampler-profile"),
    ],
)
async def test_any_input_change_changes_tokens(other: EngineRequest) -> None:
    engine = MockEngine(FAST)
    assert await tokens(engine, req()) != await tokens(engine, other)


async def test_without_seed_output_depends_on_task_id() -> None:
    engine = MockEngine(FAST)
    a1 = await tokens(engine, req(seed=None, task_id="a"))
    a2 = await tokens(engine, req(seed=None, task_id="a"))
    b = await tokens(engine, req(seed=None, task_id="b"))
    assert a1 == a2
    assert a1 != b


@pytest.mark.parametrize("max_tokens", [1, 2, 17, 256])
async def test_exactly_max_tokens(max_tokens: int) -> None:
    engine = MockEngine(FAST)
    got = await batches(engine, req(max_tokens=max_tokens))
    assert all(got), "no empty batches"
    flat = [t for batch in got for t in batch]
    assert len(flat) == max_tokens
    assert flat == mock_tokens(req(max_tokens=max_tokens))


async def test_paced_stream_yields_the_same_tokens() -> None:
    paced = MockEngine(MockSettings(tokens_per_s=2000, first_token_ms=0))
    assert await tokens(paced, req(max_tokens=20)) == mock_tokens(req(max_tokens=20))


@settings(max_examples=100, deadline=None)
@given(
    prompt=st.text(max_size=50),
    seed=st.none() | st.integers(0, 2**63 - 1),
    max_tokens=st.integers(1, 300),
    profile=st.text(min_size=1, max_size=10),
)
def test_mock_tokens_is_a_pure_function_of_its_inputs(
    prompt: str, seed: int | None, max_tokens: int, profile: str
) -> None:
    request = req(prompt=prompt, seed=seed, max_tokens=max_tokens, sampler_profile=profile)
    out = mock_tokens(request)
    assert len(out) == max_tokens
    assert all(isinstance(t, str) and t for t in out)
    assert out == mock_tokens(req(prompt=prompt, seed=seed, max_tokens=max_tokens, sampler_profile=profile))
    # A longer request extends a shorter one: the same RNG stream, more draws.
    assert (
        mock_tokens(req(prompt=prompt, seed=seed, max_tokens=max_tokens + 5, sampler_profile=profile))[:max_tokens]
        == out
    )


async def test_custom_handler_replaces_the_generator() -> None:
    seen: list[EngineRequest] = []

    def handler(request: EngineRequest) -> Sequence[str]:
        seen.append(request)
        return ["hello", " world", f" {request.prompt}"]

    engine = MockEngine(FAST, handler=handler)
    request = req(prompt="there", max_tokens=99)
    assert await tokens(engine, request) == ["hello", " world", " there"]
    assert seen == [request]


async def test_describe_health_and_counters() -> None:
    engine = MockEngine(MockSettings(tokens_per_s=None, first_token_ms=0, slots=3, ctx_max=1024))
    info = engine.describe()
    assert (info.engine, info.version, info.ctx_max, info.slots) == ("mock", "mock-1", 1024, 3)
    assert info.determinism == {Determinism.strict, Determinism.best_effort}
    assert await engine.health() is True
    assert (engine.active, engine.started_streams) == (0, 0)
    stream = engine.stream(req(max_tokens=50))
    first = await stream.__anext__()
    assert first
    assert engine.active == 1
    await stream.aclose()
    assert (engine.active, engine.started_streams) == (0, 1)
    await tokens(engine, req())
    assert (engine.active, engine.started_streams) == (0, 2)


async def test_stamp_tokens_are_emission_times() -> None:
    engine = MockEngine(MockSettings(tokens_per_s=None, first_token_ms=0, stamp_tokens=True))
    before = time.time_ns()
    out = await tokens(engine, req(max_tokens=10))
    after = time.time_ns()
    assert len(out) == 10
    stamps = [int(t.removesuffix(" ")) for t in out]
    assert all(t.endswith(" ") for t in out)
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= stamps[-1] <= after


# --------------------------------------------------------------------------------------------
# Faults


@pytest.mark.parametrize("n", [0, 1, 5, 16])
async def test_error_after_exactly_n_tokens(n: int) -> None:
    engine = MockEngine(FAST.model_copy(update={"faults": MockFaults(error_after_tokens=n)}))
    got, err = await collect_until_error(engine, req(max_tokens=16))
    assert got == mock_tokens(req(max_tokens=16))[:n]
    assert err.code is ErrorCode.ENGINE_ERROR
    assert err.retriable is False
    assert err.engine == "mock"
    assert engine.active == 0


async def test_fault_beyond_max_tokens_never_fires() -> None:
    engine = MockEngine(FAST.model_copy(update={"faults": MockFaults(error_after_tokens=17, reset_after_tokens=99)}))
    assert await tokens(engine, req(max_tokens=16)) == mock_tokens(req(max_tokens=16))


@pytest.mark.parametrize("n", [0, 3])
async def test_reset_after_n_tokens_is_retriable_worker_reset(n: int) -> None:
    engine = MockEngine(FAST.model_copy(update={"faults": MockFaults(reset_after_tokens=n)}))
    got, err = await collect_until_error(engine, req(max_tokens=16))
    assert got == mock_tokens(req(max_tokens=16))[:n]
    assert err.code is ErrorCode.WORKER_RESET
    assert err.retriable is True
    assert isinstance(err.__cause__, ConnectionResetError)
    assert engine.active == 0


async def test_earliest_fault_wins() -> None:
    faults = MockFaults(error_after_tokens=5, reset_after_tokens=3, hang_after_tokens=4)
    engine = MockEngine(FAST.model_copy(update={"faults": faults}))
    got, err = await collect_until_error(engine, req(max_tokens=16))
    assert len(got) == 3
    assert err.code is ErrorCode.WORKER_RESET


@pytest.mark.parametrize("n", [0, 2])
async def test_hang_after_n_tokens_sends_nothing_more(n: int) -> None:
    engine = MockEngine(FAST.model_copy(update={"faults": MockFaults(hang_after_tokens=n)}))
    received: list[str] = []

    async def consume() -> None:
        async for batch in engine.stream(req(max_tokens=16)):
            received.extend(batch)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), timeout=0.3)
    assert received == mock_tokens(req(max_tokens=16))[:n]
    assert engine.active == 0, "cancelling the hung stream releases it"


@pytest.mark.parametrize(
    ("prompt", "faulty"),
    [("please BOOM now", True), ("BOOM", True), ("calm prompt", False), ("boom (wrong case)", False)],
)
async def test_trigger_limits_faults_to_matching_prompts(prompt: str, faulty: bool) -> None:
    engine = MockEngine(FAST.model_copy(update={"faults": MockFaults(trigger="BOOM", error_after_tokens=2)}))
    request = req(prompt=prompt, max_tokens=8)
    if faulty:
        got, err = await collect_until_error(engine, request)
        assert got == mock_tokens(request)[:2]
        assert err.code is ErrorCode.ENGINE_ERROR
    else:
        assert await tokens(engine, request) == mock_tokens(request)


class FakeClock:
    """Stands in for the mock module's ``time.monotonic`` and ``asyncio.sleep``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(mock_module, "time", SimpleNamespace(monotonic=fake.monotonic, time_ns=time.time_ns))
    monkeypatch.setattr(mock_module, "asyncio", SimpleNamespace(sleep=fake.sleep, Event=asyncio.Event))
    return fake


async def timeline(engine: MockEngine, request: EngineRequest, clock: FakeClock) -> list[tuple[float, int]]:
    """(ms since the stream started on the fake clock, tokens so far) at every batch."""
    t0 = clock.now
    out: list[tuple[float, int]] = []
    count = 0
    async for batch in engine.stream(request):
        count += len(batch)
        out.append(((clock.now - t0) * 1000, count))
    return out


@pytest.mark.parametrize(("prompt", "slow"), [("slow please", True), ("fast please", False)])
async def test_slow_start_and_pacing_on_a_fake_clock(clock: FakeClock, prompt: str, slow: bool) -> None:
    faults = MockFaults(trigger="slow", slow_start_ms=30)
    engine = MockEngine(MockSettings(tokens_per_s=100, first_token_ms=20, faults=faults))
    points = await timeline(engine, req(prompt=prompt, max_tokens=5), clock)
    first_token_ms = 50.0 if slow else 20.0
    # One token per batch, 10 ms apart, after the first-token delay (plus the slow start if triggered).
    assert [n for _, n in points] == [1, 2, 3, 4, 5]
    assert [t for t, _ in points] == pytest.approx([first_token_ms + 10.0 * i for i in range(5)], abs=1e-6)


async def test_late_consumer_gets_every_due_token_in_one_batch(clock: FakeClock) -> None:
    engine = MockEngine(MockSettings(tokens_per_s=100, first_token_ms=0))
    stream = engine.stream(req(max_tokens=10))
    assert len(await stream.__anext__()) == 1
    clock.now += 0.0455  # 45.5 ms later, tokens 2..5 (due at 10, 20, 30, 40 ms) are all due
    assert len(await stream.__anext__()) == 4
    rest = [t async for batch in stream for t in batch]
    assert len(rest) == 5
