"""orchestratord's garbage-collection policy (``server/_gc.py``): when it freezes queued tasks out of
full collections, and that what it froze is collected again once the queue is short."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp import web

from llama_orch.server._gc import THRESHOLD, GcPolicy, apply, configure


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_freezes_as_tasks_pile_up_and_collects_once_the_queue_is_short() -> None:
    policy = GcPolicy(freeze_every=1_000, low_water=100)
    assert [policy.step(n) for n in (0, 400, 999)] == [None, None, None]
    assert policy.step(1_000) == "freeze"
    assert policy.step(1_500) is None
    assert policy.step(2_100) == "freeze"
    assert policy.step(900) is None  # shorter, not yet short: the frozen tasks are still queued
    assert policy.step(1_899) is None and policy.step(1_900) == "freeze"  # counted from where it fell to
    assert policy.step(100) == "collect"
    assert policy.step(50) is None  # nothing frozen since: nothing to give back
    assert policy.step(1_050) == "freeze"


def test_nothing_frozen_for_a_queue_that_stays_short() -> None:
    policy = GcPolicy(freeze_every=1_000, low_water=100)
    assert [policy.step(n) for n in (0, 50, 999, 3, 0)] == [None] * 5


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_cycle_frozen_with_the_queue_is_freed_by_the_collect(restore_gc: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the cyclic collector frees it
    gone = weakref.ref(a)
    frozen_before = gc.get_freeze_count()
    apply("freeze")
    assert gc.get_freeze_count() > frozen_before
    del a, b
    gc.collect()
    assert gone() is not None  # frozen objects are not visited
    pause = apply("collect")
    assert gone() is None and pause >= 0
    assert gc.get_freeze_count() > 0  # the survivors are frozen again


async def test_configure_sets_the_threshold_and_runs_the_policy_while_the_app_serves(restore_gc: None) -> None:
    queued = {"n": 0}
    app = web.Application()
    configure(app, lambda: queued["n"], interval_s=0.01)
    assert gc.get_threshold() == THRESHOLD and gc.get_freeze_count() > 0
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        gc.unfreeze()
        queued["n"] = 5_000
        for _ in range(200):  # bounded: the policy looks every 10 ms
            if gc.get_freeze_count() > 0:
                break
            await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 0
    finally:
        await runner.cleanup()
