"""Crash recovery (scheduler/_recovery.py) on a real SQLite journal, in-process.

A graceful stop journals nothing of the shutdown itself, so stopping and starting again on the
same data dir recovers exactly as after a crash; tests/server/test_crash.py kills a real
orchestratord with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from llama_orch.engines.mock import MockSettings
from llama_orch.pools import PoolConfig
from llama_orch.scheduler import Batch, Orchestrator, SchedulerSettings, SqliteStore, TaskRecord
from llama_orch.scheduler._recovery import parse_frames
from llama_orch.scheduler._store import EventsRow, TaskRow, TaskStateRow
from llama_orch.scheduler._tasks import frame
from llama_orch_api import TaskRequest


def contents(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in folder.iterdir() if p.is_file()]


def events(record: TaskRecord) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in record.frames[: record.readable]:
        _, name, data = f.decode().strip().split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def until(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 100)):  # bounded
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def settings(data_dir: Path, *pools: PoolConfig) -> SchedulerSettings:
    return SchedulerSettings(pools=pools, data_dir=str(data_dir), orphan_timeout_s=None)


def slow_pool(**mock: Any) -> PoolConfig:
    mock.setdefault("tokens_per_s", 40)
    mock.setdefault("first_token_ms", 1)
    mock.setdefault("slots", 1)
    return PoolConfig(id="default", mock=MockSettings(**mock))


@pytest.mark.parametrize(
    ("blob", "count", "tokens", "problem"),
    [
        (b"", 0, 0, None),
        (frame(1, "metrics", "{}") + frame(2, "token", "{}") + frame(3, "token", "{}"), 3, 2, None),
        (frame(1, "metrics", "{}") + frame(3, "token", "{}"), 1, 0, "event 2 is missing or damaged"),
        (frame(1, "token", "{}") + frame(2, "token", "{}")[:-3], 1, 1, "a truncated event after event 1"),
        (b"garbage\n\n", 0, 0, "event 1 is missing or damaged"),
    ],
)
def test_parse_frames(blob: bytes, count: int, tokens: int, problem: str | None) -> None:
    frames, n_tokens, why = parse_frames(blob)
    assert (len(frames), n_tokens, why) == (count, tokens, problem)


async def test_every_kind_of_task_after_a_restart(tmp_path: Path) -> None:
    orch = Orchestrator(settings(tmp_path, slow_pool()))
    await orch.start()
    budget = {"tokens": 10_000}
    streaming = orch.submit(TaskRequest(prompt="a", max_tokens=400, session_id="s", budget=budget))
    queued = [orch.submit(TaskRequest(prompt=f"q{i}", max_tokens=3, session_id="s")) for i in range(2)]
    late_batch = orch.submit(TaskRequest(prompt="b", max_tokens=3, priority="batch"))
    first_interactive = orch.submit(TaskRequest(prompt="i", max_tokens=3))
    await orch.wait_durable(first_interactive.task_id)
    running = orch.get_task(streaming.task_id)
    await until(lambda: running.readable > 3 and b"event: token" in running.frames[running.readable - 1])
    delivered = running.tokens_out
    used_before = orch.sessions.get("s", 0).budget.tokens_used  # type: ignore[union-attr]
    await orch.aclose()

    again = Orchestrator(settings(tmp_path, slow_pool(tokens_per_s=2000)))
    await again.start()
    report = again.recovery
    assert report is not None
    assert (report.interrupted, report.requeued, report.rerun, report.sessions) == (1, 4, 0, 1)
    cut = again.get_task(streaming.task_id)
    await until(lambda: cut.ended)
    names = [name for name, _ in events(cut)]
    assert names[-1] == "error" and names.count("token") >= 1
    error = events(cut)[-1][1]
    assert error["code"] == "ORCHESTRATOR_RESTARTED" and error["retriable"] is True
    assert error["details"]["tokens_delivered"] == cut.tokens_out >= 1
    # Interactive before batch, each class in admission order, as before the crash.
    order = [queued[0].task_id, queued[1].task_id, first_interactive.task_id, late_batch.task_id]
    records = [again.get_task(t) for t in order]
    await until(lambda: all(r.ended for r in records))
    assert [r.state for r in records] == ["done"] * 4
    started = sorted(records, key=lambda r: r.started_at or 0)
    assert [r.task_id for r in started] == order
    session = again.sessions.get("s", 0.0)
    assert session is not None and session.budget is not None
    assert session.budget.tokens_used >= used_before + cut.tokens_out + 6
    assert cut.tokens_out <= delivered + 1
    await again.aclose()


async def test_a_running_task_that_delivered_nothing_is_run_again(tmp_path: Path) -> None:
    orch = Orchestrator(settings(tmp_path, slow_pool(first_token_ms=60_000)))
    await orch.start()
    task = orch.submit(TaskRequest(prompt="x", max_tokens=3))
    record = orch.get_task(task.task_id)
    await until(lambda: record.state == "running" and record.readable == len(record.frames) >= 3)
    await orch.aclose()
    again = Orchestrator(settings(tmp_path, slow_pool(tokens_per_s=2000)))
    await again.start()
    assert again.recovery is not None and again.recovery.rerun == 1
    rerun = again.get_task(task.task_id)
    await until(lambda: rerun.ended)
    names = [name for name, _ in events(rerun)]
    assert names.count("started") == 2 and names.count("token") == 3 and names[-1] == "end"
    ids = [int(f.split(b"\n", 1)[0].removeprefix(b"id: ")) for f in rerun.frames]
    assert ids == list(range(1, len(ids) + 1))  # one log, no id twice
    await again.aclose()


async def test_finished_tasks_stay_readable_and_sessions_keep_their_usage(tmp_path: Path) -> None:
    orch = Orchestrator(settings(tmp_path, slow_pool(tokens_per_s=2000)))
    await orch.start()
    task = orch.submit(TaskRequest(prompt="x", max_tokens=5, session_id="s", budget={"tokens": 100, "cost": 1.0}))
    record = orch.get_task(task.task_id)
    await until(lambda: record.ended)
    info = orch.session_info("s")
    await orch.aclose()
    again = Orchestrator(settings(tmp_path, slow_pool()))
    await again.start()
    assert again.recovery is not None and again.recovery.finished == 1
    assert again.get_task(task.task_id).frames == record.frames
    after = again.session_info("s")
    assert after.turns == info.turns == 1 and after.tokens_used == 5
    assert after.budget is not None and after.budget.tokens_used == 5 and after.budget.tokens_remaining == 95
    assert 0 < after.ttl_ms_remaining <= info.ttl_ms_remaining
    await again.aclose()


async def test_a_task_of_a_pool_no_longer_configured_is_reported_not_forgotten(tmp_path: Path) -> None:
    gone = PoolConfig(id="gone", mock=MockSettings(first_token_ms=60_000, slots=1))
    orch = Orchestrator(settings(tmp_path, slow_pool(), gone))
    await orch.start()
    task = orch.submit(TaskRequest(prompt="x", max_tokens=3, pool="gone"))
    await orch.wait_durable(task.task_id)
    await orch.aclose()
    again = Orchestrator(settings(tmp_path, slow_pool()))
    await again.start()
    assert again.recovery is not None and again.recovery.unrecoverable == [task.task_id]
    await until(lambda: again.get_task(task.task_id).ended)
    name, error = events(again.get_task(task.task_id))[-1]
    assert name == "error" and error["code"] == "ORCHESTRATOR_RESTARTED"
    assert error["details"]["recovered"] is False and "gone" in error["details"]["reason"]
    await again.aclose()


async def test_a_damaged_journal_is_reported_and_the_orchestrator_serves(tmp_path: Path) -> None:
    orch = Orchestrator(settings(tmp_path, slow_pool(tokens_per_s=2000)))
    await orch.start()
    for i in range(20):
        orch.submit(TaskRequest(prompt=f"x{i}", max_tokens=2))
    await orch.wait_durable("")
    await orch.aclose()
    journal = tmp_path / "tasks.sqlite3"
    journal.write_bytes(b"\x00" * 100 + journal.read_bytes()[100:])  # the header is gone
    again = Orchestrator(settings(tmp_path, slow_pool(tokens_per_s=2000)))
    await again.start()
    assert again.recovery is not None and again.recovery.problems
    assert "damaged" in again.recovery.problems[0]
    task = again.submit(TaskRequest(prompt="after", max_tokens=2))
    await again.wait_durable(task.task_id)
    await until(lambda: again.get_task(task.task_id).ended)
    await again.aclose()


async def test_an_ended_task_whose_scrub_a_crash_cut_off_is_scrubbed_at_the_next_start(tmp_path: Path) -> None:
    """The scrub at rest follows the commit that ended a task; a crash in between leaves it unscrubbed
    in the file (a SIGKILL cannot be aimed between two commits here: the file is written as it then is)."""
    secret = "hunter2-canary-7f3a"
    body = TaskRequest(prompt=f"say {secret}", max_tokens=4).model_dump_json(exclude_none=True).encode()
    log = frame(1, "token", json.dumps({"t": secret, "i": 0})) + frame(2, "end", "{}")
    store = SqliteStore(tmp_path / "tasks.sqlite3")
    await store.recover()
    await store.write(Batch(admitted=[TaskRow("t1", 1, "default", body, 1.0, 0, 0)], events=[EventsRow("t1", 1, log)],
                            states=[TaskStateRow("t1", "done", "default/r0", True, 2.0)]))  # fmt: skip
    await store.aclose()
    orch = Orchestrator(settings(tmp_path, slow_pool()))
    assert orch.journal is not None
    orch.journal.redact = lambda text: text.replace(secret, "[REDACTED]")
    await orch.start()
    assert orch.recovery is not None and orch.recovery.finished == 1
    await until(lambda: orch.journal is not None and orch.journal.scrubs_pending == 0)
    assert secret.encode() in orch.get_task("t1").frames[0]  # the live record still reads as it was
    await orch.aclose()
    found = await SqliteStore(tmp_path / "tasks.sqlite3").recover()
    assert found.tasks[0].scrubbed
    assert secret.encode() not in found.tasks[0].row.body and secret.encode() not in found.tasks[0].frames
    assert not any(secret.encode() in blob for blob in contents(tmp_path))
