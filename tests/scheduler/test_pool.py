"""Pool (scheduler/_pool.py): limits from config and engine; what admission reads of it."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.core import Full, PoolState, QueuePolicy, head_needed
from llama_orch.engines.mock import MockSettings
from llama_orch.errors import OrchError
from llama_orch.pools import PoolConfig
from llama_orch.pools._config import QueueConfig
from llama_orch.scheduler import Pool
from llama_orch.scheduler._tasks import TaskRecord
from llama_orch_api import ErrorCode, Priority, TaskRequest


def test_max_tokens_above_an_endpoint_engines_context_is_capped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = PoolConfig(
        id="p", engine="mock", endpoint="http://127.0.0.1:9", mock=MockSettings(ctx_max=512), max_tokens=1000
    )
    with caplog.at_level(logging.WARNING, logger="llama_orch.pool"):
        pool = Pool(config, on_finished=lambda r: None, session_of=lambda s: None)
    assert (pool.ctx_max, pool.limits.max_tokens) == (512, 512)
    assert "capping it there" in caplog.text


def test_snapshot_of_a_pool_that_does_not_admit_carries_no_load() -> None:
    pool = Pool(PoolConfig(id="p", mock=MockSettings(slots=3)), on_finished=lambda r: None, session_of=lambda s: None)
    assert pool.snapshot(0.0).load.free_slots == 3
    pool.state = PoolState.draining
    snap = pool.snapshot(0.0)
    assert not snap.admits and snap.load.free_slots == 0 and snap.state is PoolState.draining


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.sampled_from(list(Priority)), st.integers(1, 500)),
            st.tuples(st.just("cancel"), st.integers(0, 40), st.just(0)),
            st.tuples(st.just("ready"), st.booleans(), st.just(0)),
            st.tuples(st.just("abort"), st.just(0), st.just(0)),
        ),
        max_size=60,
    )
)
def test_load_lists_the_queue_head_as_it_is_after_any_change(ops: list[tuple[str, object, int]]) -> None:
    # load() keeps the head lists between calls; whatever changed the queue, they are the queue's.
    config = PoolConfig(id="p", mock=MockSettings(slots=3), queue=QueueConfig(capacity=12, policy=QueuePolicy.drop_lru))
    pool = Pool(config, on_finished=lambda r: None, session_of=lambda s: None)
    replica = pool.replicas[0]
    queued: list[TaskRecord] = []
    for i, (op, arg, size) in enumerate(ops):
        if op == "push":
            assert isinstance(arg, Priority)
            record = TaskRecord(f"t{i}", TaskRequest(prompt="x", max_tokens=size, priority=arg), "p",
                                queue_position=0, predicted_start_ms=0)  # fmt: skip
            try:
                pool.enqueue(record)
                queued.append(record)
            except Full:
                pass
        elif op == "cancel" and queued:
            assert isinstance(arg, int)
            pool.cancel(queued.pop(arg % len(queued)))
        elif op == "ready":
            replica.ready = bool(arg)  # as the replica set says it (no pump: nothing may start here)
        elif op == "abort":
            pool.abort_all(OrchError(ErrorCode.INTERNAL, "test"))
        load = pool.load(0.0)
        n = head_needed(load.free_slots + len(load.running))
        assert load.head_interactive == tuple(r.request.max_tokens for r in pool.queue.lane(Priority.interactive, n))
        assert load.head_batch == tuple(r.request.max_tokens for r in pool.queue.lane(Priority.batch, n))
        assert (load.queued_interactive, load.queued_batch) == (
            pool.queue.depth(Priority.interactive), pool.queue.depth(Priority.batch)
        )  # fmt: skip
        assert load.total_slots == 3 and load.capacity == 12
