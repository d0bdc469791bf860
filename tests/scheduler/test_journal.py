"""Journal (scheduler/_journal.py): group commits, frames readable only once durable, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llama_orch.errors import OrchError
from llama_orch.scheduler import Batch, Journal, Recovered, SqliteStore, TaskRecord, TaskState, TaskStore
from llama_orch_api import ErrorCode, TaskRequest


class Counting(TaskStore):
    """A real SQLite store that counts its commits and can be told to fail (a disk that fills up
    cannot be caused on demand here)."""

    def __init__(self, path: Path) -> None:
        self.inner = SqliteStore(path)
        self.batches: list[Batch] = []
        self.fail = False

    async def recover(self) -> Recovered:
        return await self.inner.recover()

    async def write(self, batch: Batch) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        await self.inner.write(batch)
        self.batches.append(batch)

    async def aclose(self) -> None:
        await self.inner.aclose()


def record(n: int) -> TaskRecord:
    return TaskRecord(f"t{n}", TaskRequest(prompt="x", max_tokens=4), "p", queue_position=n, predicted_start_ms=0)


@pytest.fixture
async def store(tmp_path: Path) -> Counting:
    s = Counting(tmp_path / "tasks.sqlite3")
    await s.recover()
    return s


async def test_many_admissions_share_one_commit(store: Counting) -> None:
    journal = Journal(store, commit_interval_s=0.005)
    journal.start()
    records = [record(n) for n in range(50)]
    for rec in records:
        journal.admit(rec, b'{"prompt":"x","max_tokens":4}', wall=1.0)
        rec.emit("metrics", "{}")
    waiters = [journal.committed() for _ in records]
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert len(store.batches) == 1 and len(store.batches[0].admitted) == 50
    assert [r.seq for r in records] == list(range(1, 51))
    await journal.aclose()


async def test_frames_are_readable_only_once_durable(store: Counting) -> None:
    journal = Journal(store, commit_interval_s=0.01)
    journal.start()
    rec = record(1)
    journal.admit(rec, b"{}", wall=1.0)
    rec.emit_tokens(["a", "b"])
    assert rec.readable == 0 and not rec.ended  # in memory, not yet durable: no reader sees it
    assert await rec.wait(0, 5.0)
    assert rec.readable == 2
    rec.finish("end", "{}", TaskState.done)
    assert not rec.ended
    await journal.committed()
    assert rec.ended
    await journal.aclose()


async def test_a_failing_store_fails_the_waiters_keeps_the_changes_and_streams_still_flow(store: Counting) -> None:
    journal = Journal(store, commit_interval_s=0.0)
    journal.start()
    store.fail = True
    rec = record(1)
    journal.admit(rec, b"{}", wall=1.0)
    rec.emit_tokens(["a"])
    with pytest.raises(OrchError) as info:
        await asyncio.wait_for(journal.committed(), 5)
    assert info.value.code is ErrorCode.INTERNAL
    assert rec.readable == 1  # readers are not held hostage by a failing disk
    assert journal.failures >= 1
    store.fail = False
    await asyncio.wait_for(journal.committed(), 5)  # the kept changes are written on the next try
    await journal.aclose()
    found = await SqliteStore(store.inner.path).recover()
    assert [t.row.task_id for t in found.tasks] == ["t1"]
    assert found.tasks[0].frames.count(b"event: token") == 1


async def test_after_freeze_nothing_is_written_but_frames_flow(store: Counting) -> None:
    journal = Journal(store, commit_interval_s=0.0)
    journal.start()
    rec = record(1)
    journal.admit(rec, b"{}", wall=1.0)
    await journal.committed()
    journal.freeze()
    rec.emit_tokens(["late"])
    assert rec.readable == 1
    before = len(store.batches)
    await journal.aclose()
    assert len(store.batches) == before
