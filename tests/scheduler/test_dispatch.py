"""Dispatcher (scheduler/_dispatch.py): replica choice and strict-task exclusivity."""

from __future__ import annotations

import pytest

from llama_orch.engines import MockEngine
from llama_orch.engines.mock import MockSettings
from llama_orch.scheduler import Dispatcher, Replica, TaskRecord
from llama_orch_api import TaskRequest


class ExclusiveMock(MockEngine):
    """A mock whose numerics (like llama.cpp's) would depend on the batch: strict tasks run alone."""

    exclusive_strict = True


def replica(name: str, *, slots: int = 2, exclusive: bool = False) -> Replica:
    engine = ExclusiveMock(MockSettings()) if exclusive else MockEngine(MockSettings())
    return Replica(f"p/{name}", engine, slots, "mock:tiny")


def task(task_id: str, *, strict: bool = False, session: str | None = None) -> TaskRecord:
    request = TaskRequest(
        prompt="hi", max_tokens=4, determinism="strict" if strict else "best_effort", session_id=session
    )
    return TaskRecord(task_id, request, "p", queue_position=0, predicted_start_ms=0, now=0.0)


def test_fewest_active_then_id() -> None:
    d = Dispatcher("p")
    r0, r1 = replica("r0"), replica("r1")
    assert d.pick([r0, r1], task("a"), None) is r0
    d.claim(r0, task("a"))
    assert d.pick([r0, r1], task("b"), None) is r1


def test_not_ready_or_full_replicas_are_skipped() -> None:
    d = Dispatcher("p")
    r0, r1 = replica("r0", slots=1), replica("r1")
    r1.ready = False
    d.claim(r0, task("a"))
    assert d.pick([r0, r1], task("b"), None) is None
    r1.ready = True
    assert d.pick([r0, r1], task("b"), None) is r1


def test_session_affinity_and_failover() -> None:
    d = Dispatcher("p")
    r0, r1 = replica("r0"), replica("r1")
    assert d.pick([r0, r1], task("a", session="s"), "p/r1") is r1
    r1.ready = False
    assert d.pick([r0, r1], task("a", session="s"), "p/r1") is r0


@pytest.mark.parametrize("exclusive", [True, False])
def test_strict_tasks_run_alone_only_where_the_engine_says_so(exclusive: bool) -> None:
    d = Dispatcher("p")
    only = replica("r0", slots=4, exclusive=exclusive)
    d.claim(only, task("busy"))
    # A strict task needs an idle replica where the engine's numerics depend on the batch.
    picked = d.pick([only], task("s", strict=True), None)
    assert (picked is None) is exclusive
    d.release(only, task("busy"))
    only.active, only.running = 0, {}
    strict = task("s", strict=True)
    assert d.pick([only], strict, None) is only
    d.claim(only, strict)
    # While it runs, nothing joins it (on an exclusive engine).
    assert (d.pick([only], task("b"), None) is None) is exclusive
    d.release(only, strict)
    assert d.view(only, strict=False).ready
