"""Background work yields to streaming (scheduler/_background.py, the record writer)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from llama_orch.scheduler import RecordWriter, TaskRecord
from llama_orch.scheduler._background import BACKGROUND_SHARE, CATCH_UP, MAX_PAUSE_S, Pacer, pause_after
from llama_orch_api import TaskRequest


def test_no_pause_when_nothing_streams() -> None:
    assert pause_after(0.01, None) == 0.0
    assert pause_after(0.01, lambda: False) == 0.0
    assert pause_after(0.0, lambda: True) == 0.0


def test_a_pause_keeps_background_work_to_its_share() -> None:
    pause = pause_after(0.01, lambda: True)
    assert abs(0.01 / (0.01 + pause) - BACKGROUND_SHARE) < 1e-9
    assert pause_after(10.0, lambda: True) == MAX_PAUSE_S


async def test_records_are_paced_while_tasks_stream_and_all_written() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def put(**kwargs: Any) -> None:
        starts.append(loop.time())
        time.sleep(0.01)  # noqa: ASYNC251 - blocks the loop on purpose: 10 ms per record (redaction, canonical JSON)

    writer = RecordWriter(put)
    writer.pacer = Pacer(lambda: True)
    writer.start()
    for n in range(3):
        rec = TaskRecord(f"t{n}", TaskRequest(prompt="x", max_tokens=4), "p", queue_position=0, predicted_start_ms=0)
        writer.submit({"task_id": rec.task_id}, rec)
    await writer.aclose()
    assert writer.written == 3 and writer.dropped == 0
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.9 * 0.05 for gap in gaps), gaps  # 10 ms of work, then 40 ms of pause


def test_one_pacer_keeps_all_its_workers_to_one_share() -> None:
    pacer = Pacer(lambda: True)
    assert pacer.wait_s(0.0) == 0.0
    pacer.ran(0.0, 0.01)  # one worker's 10 ms piece
    assert abs(pacer.wait_s(0.01) - 0.04) < 1e-9  # any worker waits 40 ms now
    pacer.ran(0.05, 0.051)  # the next piece, once it was its turn, owes its own pause
    assert pacer.wait_s(0.051) >= 0.004 - 1e-9


def test_a_worker_far_behind_does_not_wait() -> None:
    pacer = Pacer(lambda: True)
    pacer.ran(0.0, 0.01)
    assert pacer.wait_s(0.01, backlog=CATCH_UP - 1) > 0
    assert pacer.wait_s(0.01, backlog=CATCH_UP) == 0.0
