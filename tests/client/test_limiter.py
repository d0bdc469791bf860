"""AdaptiveLimiter arithmetic and its gates (no network)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llama_orch.client import AdaptiveLimiter
from llama_orch.client._limiter import AsyncGate, SyncGate


def fill(limiter: AdaptiveLimiter) -> list[object]:
    permits = []
    while (permit := limiter.try_acquire()) is not None:
        permits.append(permit)
    return permits


def test_additive_increase_only_while_the_limit_binds_and_the_queue_has_room() -> None:
    limiter = AdaptiveLimiter(initial=2, max_limit=100)
    idle = limiter.try_acquire()
    assert idle is not None
    limiter.on_admitted(idle, backoff_ms=0)
    assert limiter.limit == 2  # one of two in flight: the limit did not hold anyone back
    busy = limiter.try_acquire()
    assert busy is not None
    limiter.on_admitted(busy, backoff_ms=0)
    assert limiter.limit == pytest.approx(2.5)
    limiter.release(idle)
    held = limiter.try_acquire()
    assert held is not None
    limiter.on_admitted(held, backoff_ms=120)
    assert limiter.limit == pytest.approx(2.5)  # the server said its queue is filling: hold


def test_about_one_more_per_round_of_saturated_admissions() -> None:
    limiter = AdaptiveLimiter(initial=4, max_limit=100)
    for _ in range(4):
        permits = fill(limiter)
        for permit in permits:
            limiter.on_admitted(permit, 0)  # type: ignore[arg-type]
        for permit in permits:
            limiter.release(permit)  # type: ignore[arg-type]
    assert 6.5 <= limiter.limit <= 8  # 4 + ~1 per round


def test_multiplicative_decrease_once_per_round() -> None:
    limiter = AdaptiveLimiter(initial=8, max_limit=100, decrease=0.5)
    permits = fill(limiter)
    assert len(permits) == 8
    for permit in permits:  # eight 429s from submissions made before the first cut
        limiter.on_backpressure(permit)  # type: ignore[arg-type]
        limiter.release(permit)  # type: ignore[arg-type]
    assert limiter.limit == 4
    later = limiter.try_acquire()
    assert later is not None
    limiter.on_backpressure(later)
    assert limiter.limit == 2
    assert limiter.stats().backpressure == 9
    assert limiter.stats().decreases == 2


def test_never_below_the_minimum_nor_above_the_ceiling() -> None:
    limiter = AdaptiveLimiter(initial=3, max_limit=100)
    for _ in range(20):
        permit = limiter.try_acquire()
        assert permit is not None
        limiter.on_backpressure(permit)
        limiter.release(permit)
    assert limiter.limit == 1
    limiter.set_ceiling(5)
    for _ in range(200):
        permits = fill(limiter)
        for permit in permits:
            limiter.on_admitted(permit, 0)  # type: ignore[arg-type]
        for permit in permits:
            limiter.release(permit)  # type: ignore[arg-type]
    assert limiter.limit == 5
    assert limiter.stats().peak_in_flight == 5


def test_a_permit_is_released_once() -> None:
    limiter = AdaptiveLimiter(initial=2)
    permit = limiter.try_acquire()
    assert permit is not None
    limiter.release(permit)
    limiter.release(permit)
    assert limiter.in_flight == 0


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimiter(initial=0.5)
    with pytest.raises(ValueError, match="decrease"):
        AdaptiveLimiter(decrease=1.5)


def test_sync_gate_blocks_until_a_release() -> None:
    gate = SyncGate(AdaptiveLimiter(initial=1))
    first = gate.acquire()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire()))
    waiter.start()
    waiter.join(0.05)
    assert got == [] and waiter.is_alive()
    gate.release(first)
    waiter.join(10)
    assert len(got) == 1


async def test_async_gate_wakes_waiters_and_survives_cancellation() -> None:
    gate = AsyncGate(AdaptiveLimiter(initial=1))
    first = await gate.acquire()
    cancelled = asyncio.create_task(gate.acquire())
    waiting = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not waiting.done()
    gate.release(first)
    second = await asyncio.wait_for(waiting, 10)
    assert gate.limiter.in_flight == 1
    gate.release(second)
    assert gate.limiter.in_flight == 0
