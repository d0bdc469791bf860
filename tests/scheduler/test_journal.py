"""Journal (scheduler/_journal.py): group commits, frames readable only once durable, failures."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from pathlib import Path

import pytest

from llama_orch.errors import OrchError
from llama_orch.policy import Redactor
from llama_orch.scheduler import Batch, Journal, Recovered, SqliteStore, TaskRecord, TaskState, TaskStore
from llama_orch.scheduler._background import Pacer
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


def contents(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in folder.iterdir() if p.is_file()]


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


async def test_an_ended_task_is_scrubbed_at_rest(store: Counting) -> None:
    secret = "hunter2-canary-7f3a"
    journal = Journal(store, commit_interval_s=0.0, redact=lambda text: text.replace(secret, "[REDACTED]"))
    journal.start()
    request = TaskRequest(prompt=f"say {secret}", max_tokens=4)
    rec = TaskRecord("t1", request, "p", queue_position=0, predicted_start_ms=0)
    journal.admit(rec, rec.request.model_dump_json().encode(), wall=1.0)
    rec.emit_tokens([secret])
    await journal.committed()  # while it may still run, the request is kept as submitted
    found_running = await SqliteStore(store.inner.path).recover()
    assert secret.encode() in found_running.tasks[0].row.body
    rec.finish("end", "{}", TaskState.done)
    await journal.committed()
    assert rec.frames[0].count(secret.encode()) == 1  # readers of the live task still get what was said
    await journal.aclose()
    files = contents(store.inner.path.parent)
    assert files and not any(secret.encode() in blob for blob in files)
    found = await SqliteStore(store.inner.path).recover()
    assert b"[REDACTED]" in found.tasks[0].row.body and b"[REDACTED]" in found.tasks[0].frames
    assert found.tasks[0].state is not None and found.tasks[0].state.state == "done"


async def test_a_secret_split_across_tokens_is_scrubbed_at_rest(store: Counting) -> None:
    """An engine's tokens are pieces of words: a key in three tokens, or a non-ASCII literal (in the
    log only as JSON escapes), is in no frame whole. At rest (the SQLite files) it is gone all the
    same; the live record keeps what was said, and the stored log keeps its frames and ids."""
    literal = "canäry-5e1f0c2b9d7a4e63"
    redactor = Redactor(literals=[literal])
    journal = Journal(store, commit_interval_s=0.0, redact=redactor.clean)
    journal.redact_pieces = redactor.redact_pieces
    journal.start()
    rec = TaskRecord("t1", TaskRequest(prompt="go", max_tokens=16), "p", queue_position=0, predicted_start_ms=0)
    journal.admit(rec, rec.request.model_dump_json().encode(), wall=1.0)
    rec.emit_tokens(["key", " sk-abcd", "efghijkl", "mnop12345678", " and can", "äry-5e1f0c", "2b9d7a4e63", "."])
    rec.finish("end", "{}", TaskState.done)
    await journal.committed()
    live = b"".join(rec.frames)
    assert b"efghijkl" in live and b"2b9d7a4e63" in live  # readers of the live task get what was said
    await journal.aclose()
    files = contents(store.inner.path.parent)
    for piece in (b"efghijkl", b"mnop12345678", b"sk-abcd", b"2b9d7a4e63", b"5e1f0c"):
        assert files and not any(piece in blob for blob in files), piece
    found = (await SqliteStore(store.inner.path).recover()).tasks[0]
    assert found.scrubbed
    frames = [f for f in found.frames.split(b"\n\n") if f]
    assert len(frames) == len(rec.frames)  # same frames: a reader resuming after a restart keeps its ids
    assert [f.split(b"\n", 1)[0] for f in frames] == [f.split(b"\n", 1)[0] for f in rec.frames]
    assert found.frames.count(b"[REDACTED]") == 2


async def test_the_scrub_comes_after_the_commit_that_made_the_end_readable(store: Counting) -> None:
    """Redacting an event log is slow work: the terminal frames become readable with a plain commit,
    and the scrub at rest follows in later commits of its own, a slice at a time."""
    secret = "hunter2-canary-7f3a"
    journal = Journal(store, commit_interval_s=0.0, redact=lambda text: text.replace(secret, "[REDACTED]"))
    journal.start()
    records = [record(n) for n in range(5)]
    for rec in records:
        journal.admit(rec, b"{}", wall=1.0)
        rec.emit_tokens([secret] * 50)
    await journal.committed()
    for rec in records:
        rec.finish("end", "{}", TaskState.done)
    await journal.committed()
    assert all(rec.ended for rec in records)
    ending = next(b for b in store.batches if b.states and all(s.state == "done" for s in b.states))
    assert len(ending.states) == 5 and not ending.scrubbed  # the end is readable before any scrub
    for _ in range(500):  # bounded: the flusher scrubs in the background
        if journal.scrubs_pending == 0:
            break
        await asyncio.sleep(0.01)
    assert journal.scrubs_pending == 0
    scrubs = [b for b in store.batches if b.scrubbed]
    assert scrubs and all(not (b.admitted or b.events or b.states) for b in scrubs)
    assert sorted(r.task_id for b in scrubs for r in b.scrubbed) == sorted(r.task_id for r in records)
    found = await SqliteStore(store.inner.path).recover()
    assert all(t.scrubbed and secret.encode() not in t.frames for t in found.tasks)
    assert all(t.frames.count(b"[REDACTED]") == 50 for t in found.tasks)
    await journal.aclose()


async def test_a_task_forgotten_before_its_scrub_is_not_scrubbed(store: Counting) -> None:
    journal = Journal(store, commit_interval_s=0.0, redact=str.upper)
    rec = record(1)
    journal.admit(rec, b"{}", wall=1.0)
    rec.finish("end", "{}", TaskState.done)
    assert await journal.flush() and journal.scrubs_pending == 1
    journal.forget([rec.task_id])
    assert journal.scrubs_pending == 0
    assert await journal.flush()
    await journal.aclose()
    assert not any(b.scrubbed for b in store.batches)
    assert (await SqliteStore(store.inner.path).recover()).tasks == []


async def test_scrubs_yield_to_streaming_tasks_but_are_not_starved(store: Counting) -> None:
    """While tasks stream, each scrub slice is followed by a pause (background work takes at most
    a fifth of the loop); the scrubs still all happen, and commits go on between them."""
    loop = asyncio.get_running_loop()
    slices: list[float] = []

    def slow_redact(text: str) -> str:
        slices.append(loop.time())
        time.sleep(0.01)  # a scrub that takes 10 ms of the loop (blocking on purpose)
        return text

    journal = Journal(store, commit_interval_s=0.0, redact=slow_redact)
    journal.pacer = Pacer(lambda: True)  # tasks stream all along
    journal.start()
    records = [record(n) for n in range(3)]
    for rec in records:
        journal.admit(rec, b"{}", wall=1.0)
    await journal.committed()
    for rec in records:
        rec.finish("end", "{}", TaskState.done)
    await journal.committed()
    for _ in range(500):  # bounded
        if journal.scrubs_pending == 0:
            break
        await asyncio.sleep(0.01)
    assert journal.scrubs_pending == 0
    # Two redactions (request, events) per task; a slice ends after the first task past 2 ms.
    # Between slices: the slice's own 20 ms plus a pause of four times that.
    starts = slices[::2]
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.9 * 5 * 0.02 for gap in gaps), gaps
    await journal.aclose()


async def test_a_log_redaction_leaves_alone_stays_where_it_is(store: Counting) -> None:
    """Rewriting the rows of a task that streamed beside others rewrites every page they share: a
    scrub that changes nothing in the event log only marks the task scrubbed."""
    secret = "hunter2-canary-7f3a"
    journal = Journal(store, commit_interval_s=0.0, redact=lambda text: text.replace(secret, "[REDACTED]"))
    journal.start()
    plain, leaky = record(1), record(2)
    for rec in (plain, leaky):
        journal.admit(rec, b"{}", wall=1.0)
    for n in range(3):  # three commits, each with a row of both tasks
        plain.emit_tokens([f"word{n}"])
        leaky.emit_tokens([secret if n == 1 else f"word{n}"])
        await journal.committed()
    for rec in (plain, leaky):
        rec.finish("end", "{}", TaskState.done)
    await journal.committed()
    await journal.scrub()
    await journal.aclose()
    conn = sqlite3.connect(store.inner.path)
    rows = dict(conn.execute("SELECT seq, count(*) FROM events GROUP BY seq").fetchall())
    conn.close()
    assert rows == {1: 4, 2: 1}  # 3 token commits and the end, as written; the leaky one rewritten whole
    found = {t.row.task_id: t for t in (await SqliteStore(store.inner.path).recover()).tasks}
    assert found["t1"].scrubbed and found["t2"].scrubbed
    assert found["t1"].frames == b"".join(plain.frames)
    assert secret.encode() not in found["t2"].frames and found["t2"].frames.count(b"[REDACTED]") == 1
