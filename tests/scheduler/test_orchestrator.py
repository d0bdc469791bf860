"""Orchestrator (scheduler/_orchestrator.py) driven directly, with no HTTP anywhere: the
scheduler room runs tasks end to end on its own (the server only translates)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator

import pytest

from llama_orch.engines.mock import MockSettings
from llama_orch.errors import AdmissionError, QueueFullError
from llama_orch.pools import PoolConfig, QueueConfig
from llama_orch.scheduler import Orchestrator, SchedulerSettings, TaskRecord
from llama_orch_api import AdmissionResponse, ErrorCode, TaskRequest


@pytest.fixture
async def orch() -> AsyncIterator[Orchestrator]:
    pool = PoolConfig(
        id="default", mock=MockSettings(tokens_per_s=2000, first_token_ms=1, slots=1), queue=QueueConfig(capacity=2)
    )
    orchestrator = Orchestrator(SchedulerSettings(pools=(pool,), metrics_interval_s=0.05))
    await orchestrator.start()
    yield orchestrator
    await orchestrator.aclose()


async def finished(record: TaskRecord) -> list[str]:
    for _ in range(500):  # bounded: 5 s
        if record.terminal:
            break
        await asyncio.sleep(0.01)
    return [frame.decode().split("\n")[1].removeprefix("event: ") for frame in record.frames]


async def test_a_task_runs_to_its_end(orch: Orchestrator) -> None:
    admitted = orch.submit(TaskRequest(prompt="hello", max_tokens=5, seed=1))
    AdmissionResponse.model_validate_json(admitted.to_json())
    names = await finished(orch.get_task(admitted.task_id))
    assert names[0] == "metrics" and names[1] == "started" and names[-1] == "end"
    assert names.count("token") == 5


async def test_full_queue_is_refused_with_retry_advice(orch: Orchestrator) -> None:
    slow = TaskRequest(prompt="x", max_tokens=2000)
    orch.submit(slow)  # runs
    orch.submit(slow)
    second = orch.submit(slow)  # the queue of 2 is now full
    assert second.backoff_ms > 0
    with pytest.raises(QueueFullError) as info:
        orch.submit(slow)
    err = info.value
    assert err.code is ErrorCode.ADMISSION_REJECT and err.status == 429
    assert err.retry_after_ms is not None and err.retry_after_ms > 0
    assert err.policy_label == "queue-full:reject"


async def test_duplicate_task_id_and_unknown_profile(orch: Orchestrator) -> None:
    orch.submit(TaskRequest(task_id="t-1", prompt="x", max_tokens=1))
    with pytest.raises(AdmissionError) as info:
        orch.submit(TaskRequest(task_id="t-1", prompt="x", max_tokens=1))
    assert info.value.code is ErrorCode.TASK_EXISTS
    with pytest.raises(AdmissionError) as info:
        orch.submit(TaskRequest(prompt="x", max_tokens=1, sampler_profile_version="nope@9"))
    assert info.value.code is ErrorCode.INVALID_PARAMS


async def test_cancel_of_a_queued_task_ends_it(orch: Orchestrator) -> None:
    orch.submit(TaskRequest(prompt="x", max_tokens=2000))
    queued = orch.submit(TaskRequest(prompt="x", max_tokens=2000))
    orch.cancel(queued.task_id)
    record = orch.get_task(queued.task_id)
    assert record.state == "cancelled"
    last = json.loads(record.frames[-1].decode().split("data: ", 1)[1])
    assert last["code"] == "CANCELLED"


async def test_orphaned_tasks_are_cancelled_and_free_their_place() -> None:
    pool = PoolConfig(id="default", mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=1))
    orch = Orchestrator(SchedulerSettings(pools=(pool,), orphan_timeout_s=30.0))
    await orch.start()
    try:
        running = orch.submit(TaskRequest(prompt="x", max_tokens=100))
        read = orch.submit(TaskRequest(prompt="y", max_tokens=100))
        unread = orch.submit(TaskRequest(prompt="z", max_tokens=100))
        reader = orch.get_task(read.task_id)
        reader.readers = 1  # a stream is open on it (what the server's stream route counts)
        now = orch.get_task(unread.task_id).admitted_at
        assert orch.cancel_orphans(now + 29.0) == []
        orphans = orch.cancel_orphans(now + 31.0)
        assert sorted(orphans) == sorted([running.task_id, unread.task_id])
        for task_id in orphans:
            record = orch.get_task(task_id)
            await finished(record)
            last = json.loads(record.frames[-1].decode().split("data: ", 1)[1])
            assert (record.state, last["code"], last["details"]["reason"]) == ("cancelled", "CANCELLED", "orphaned")
        # The slot the orphan held goes to the task somebody reads.
        for _ in range(200):  # bounded: the cancelled runner frees the slot as it ends
            if reader.state == "running":
                break
            await asyncio.sleep(0.01)
        assert reader.state == "running"
        reader.readers, reader.last_read = 0, now + 40.0
        assert orch.cancel_orphans(now + 60.0) == []  # read 20 s ago: not an orphan yet
    finally:
        await orch.aclose()


async def test_orphan_scans_skipped_by_the_floor_find_what_a_full_scan_finds() -> None:
    """cancel_orphans skips its walk while no task can be an orphan yet (``_orphan_floor``): over
    admissions, streams opened and closed (as the stream route does) and scans at later times, it
    answers exactly the tasks unfinished, unread and idle past the timeout."""
    rng = random.Random(7)
    pool = PoolConfig(
        id="default", mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=2), queue=QueueConfig(capacity=500)
    )
    orch = Orchestrator(SchedulerSettings(pools=(pool,), orphan_timeout_s=30.0))
    await orch.start()
    try:
        skipped = cancelled = 0
        start = time.monotonic()
        for _ in range(300):  # bounded
            op = rng.random()
            records = [r for r in orch.tasks.values() if r.finished_at is None]
            if op < 0.3 or not records:
                orch.submit(TaskRequest(prompt="x", max_tokens=100))
            elif op < 0.5:
                rng.choice(records).readers += 1
            elif op < 0.7:
                opened = [r for r in records if r.readers > 0]
                if opened:
                    record = rng.choice(opened)
                    record.readers -= 1
                    record.last_read = time.monotonic()
            else:
                # A cutoff among the tasks' admission and read times (or far before or past them).
                elapsed = time.monotonic() - start
                back = rng.choice([-15.0, 0.0, 1.0, 30.0]) if rng.random() < 0.3 else rng.uniform(0, elapsed)
                now = time.monotonic() + 30.0 - back
                expected = sorted(
                    r.task_id
                    for r in orch.tasks.values()
                    if r.finished_at is None and r.readers == 0 and (r.last_read or r.admitted_at) < now - 30.0
                )
                skipped += now - 30.0 <= orch._orphan_floor
                assert sorted(orch.cancel_orphans(now)) == expected
                cancelled += len(expected)
            if rng.random() < 0.1:
                await asyncio.sleep(0.001)
        assert skipped > 0 and cancelled > 0
    finally:
        await orch.aclose()


async def test_a_scan_skipped_by_the_floor_still_finds_a_task_unread_since_before_it() -> None:
    pool = PoolConfig(id="default", mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=1))
    orch = Orchestrator(SchedulerSettings(pools=(pool,), orphan_timeout_s=30.0))
    await orch.start()
    try:
        first = orch.get_task(orch.submit(TaskRequest(prompt="x", max_tokens=100)).task_id)
        await asyncio.sleep(0.01)
        second = orch.get_task(orch.submit(TaskRequest(prompt="y", max_tokens=100)).task_id)
        assert orch.cancel_orphans(second.admitted_at + 29.0) == []
        assert orch._orphan_floor == first.admitted_at  # the longest unread task, not the scan's time
        between = (first.admitted_at + second.admitted_at) / 2 + 30.0
        assert orch.cancel_orphans(between) == [first.task_id]
        second.readers += 1
        await asyncio.sleep(0.01)
        second.readers, second.last_read = 0, time.monotonic()  # a stream opened and closed
        assert second.task_id not in orch.cancel_orphans((second.admitted_at + second.last_read) / 2 + 30.0)
        assert second.task_id in orch.cancel_orphans(second.last_read + 31.0)
    finally:
        await orch.aclose()
