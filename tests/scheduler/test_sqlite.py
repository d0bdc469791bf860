"""SqliteStore (scheduler/_sqlite.py): round trips, atomic batches, damaged and truncated files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from llama_orch.scheduler import Batch, SqliteStore
from llama_orch.scheduler._sqlite import FORGET_BULK
from llama_orch.scheduler._store import EventsRow, ScrubRow, SessionRow, TaskRow, TaskStateRow
from llama_orch_api import TaskRequest


def task(n: int) -> TaskRow:
    return TaskRow(f"t{n}", n, "default", b'{"prompt":"p%d","max_tokens":4}' % n, 1000.0 + n, n, 10 * n)


def frames(task_id: str, first: int, count: int) -> EventsRow:
    blob = b"".join(b"id: %d\nevent: token\ndata: {}\n\n" % i for i in range(first, first + count))
    return EventsRow(task_id, first, blob)


SESSION = SessionRow("s1", 2e9, 2, 30, "default", "default/r0", True, {"tokens_limit": 100, "wall_ms_limit": None,
                     "cost_limit": 1.5, "tokens_used": 30, "wall_ms_used": 12.5, "cost_used": 0.25})  # fmt: skip


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def damaged_copies(folder: Path) -> list[Path]:
    return list(folder.glob("tasks.sqlite3.damaged-*"))


async def filled(path: Path, tasks: int = 50) -> SqliteStore:
    store = SqliteStore(path)
    assert (await store.recover()).tasks == []
    await store.write(Batch(admitted=[task(n) for n in range(1, tasks + 1)], sessions=[SESSION]))
    await store.write(Batch(events=[frames(f"t{n}", 1, 2) for n in range(1, tasks + 1)]))
    await store.write(
        Batch(events=[frames("t1", 3, 1)], states=[TaskStateRow("t1", "done", "default/r0", True, 1234.5)])
    )
    return store


async def test_round_trip_in_admission_order(tmp_path: Path) -> None:
    store = await filled(tmp_path / "tasks.sqlite3", tasks=3)
    await store.aclose()
    again = SqliteStore(tmp_path / "tasks.sqlite3")
    found = await again.recover()
    assert found.problems == [] and found.lost_task_ids == []
    assert [t.row for t in found.tasks] == [task(1), task(2), task(3)]
    first = found.tasks[0]
    assert first.state == TaskStateRow("t1", "done", "default/r0", True, 1234.5)
    assert first.frames.count(b"event: token") == 3 and first.frames.startswith(b"id: 1\n")
    assert found.tasks[1].state == TaskStateRow("t2", "queued", None, False, None)
    assert found.sessions == [SESSION]
    await again.aclose()


async def test_forgetting_and_deleting(tmp_path: Path) -> None:
    store = await filled(tmp_path / "tasks.sqlite3", tasks=3)
    await store.write(Batch(forgotten_tasks=["t2"], deleted_sessions=["s1"]))
    await store.aclose()
    again = SqliteStore(tmp_path / "tasks.sqlite3")
    found = await again.recover()
    assert [t.row.task_id for t in found.tasks] == ["t1", "t3"] and found.sessions == []
    await again.aclose()


async def test_a_failing_batch_writes_nothing(tmp_path: Path) -> None:
    store = await filled(tmp_path / "tasks.sqlite3", tasks=2)
    with pytest.raises(sqlite3.IntegrityError):  # t1 exists: the whole batch is refused
        await store.write(Batch(admitted=[task(7), task(1)], events=[frames("t2", 3, 5)]))
    await store.write(Batch(admitted=[task(8)]))  # and the store still works
    await store.aclose()
    found = await SqliteStore(tmp_path / "tasks.sqlite3").recover()
    assert [t.row.task_id for t in found.tasks] == ["t1", "t2", "t8"]
    assert found.tasks[1].frames.count(b"event: token") == 2


async def test_a_file_that_is_not_a_database_is_moved_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    path.write_bytes(b"this is not SQLite at all" * 100)
    store = SqliteStore(path)
    found = await store.recover()
    assert found.tasks == [] and len(found.problems) >= 1
    assert "damaged" in found.problems[0]
    assert damaged_copies(tmp_path)
    await store.write(Batch(admitted=[task(1)]))  # a fresh journal works
    await store.aclose()


@pytest.mark.parametrize(("keep", "at_least"), [(0.5, 220), (0.8, 390), (0.95, 400)])
async def test_a_truncated_file_gives_back_what_it_can_and_says_what_it_cannot(
    tmp_path: Path, keep: float, at_least: int
) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = await filled(path, tasks=400)
    await store.aclose()  # checkpointed: everything is in the main file now
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(int(size * keep))
    again = SqliteStore(path)
    found = await again.recover()
    assert found.problems, "a truncated journal must be reported"
    intact = [t for t in found.tasks if t.row == task(t.row.seq)]
    assert len(intact) >= at_least  # the rows before the cut are still there
    for stored in found.tasks:  # a row read from a zeroed page is garbage the recovery refuses, never used
        if stored not in intact:
            with pytest.raises(ValidationError):
                TaskRequest.model_validate_json(stored.row.body)
    # What was salvaged is in the fresh file: a second start finds the same, with no new problem.
    await again.aclose()
    third = SqliteStore(path)
    refound = await third.recover()
    assert refound.problems == []
    assert [t.row for t in refound.tasks] == [t.row for t in found.tasks]
    await third.aclose()


@pytest.mark.parametrize("keep", [0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.9])
async def test_a_journal_cut_anywhere_is_salvaged_once_and_in_bounded_time(tmp_path: Path, keep: float) -> None:
    """A damaged tree gives rows out of order (and again after a resumed scan): salvage once looped
    for ever on a file cut in its tasks table. Each row is taken once, every cut ends."""
    path = tmp_path / "tasks.sqlite3"
    store = await filled(path, tasks=400)
    await store.aclose()
    with path.open("r+b") as fh:
        fh.truncate(int(path.stat().st_size * keep))
    found = await SqliteStore(path).recover()
    assert found.problems
    ids = [t.row.task_id for t in found.tasks]
    assert len(ids) == len(set(ids))
    for stored in found.tasks:  # no events row twice (t1 has 3 token frames, the others 2)
        assert stored.frames.count(b"event: token") <= 3


async def test_overwritten_pages_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = await filled(path, tasks=400)
    await store.aclose()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(4 * page, min(len(data), 8 * page)):
        data[offset] = 0xA5
    path.write_bytes(bytes(data))
    again = SqliteStore(path)
    found = await again.recover()
    assert found.problems
    intact = [t for t in found.tasks if t.row == task(t.row.seq)]
    assert len(intact) > 300
    for stored in found.tasks:
        if stored not in intact:
            with pytest.raises(ValidationError):
                TaskRequest.model_validate_json(stored.row.body)
    await again.aclose()


_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (task_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, pool TEXT NOT NULL, body BLOB NOT NULL,
    admitted_wall REAL NOT NULL, queue_position INTEGER NOT NULL, predicted_start_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', replica TEXT, settled INTEGER NOT NULL DEFAULT 0, finished_wall REAL);
CREATE TABLE events (task_id TEXT NOT NULL, first_id INTEGER NOT NULL, frames BLOB NOT NULL);
CREATE INDEX events_task ON events (task_id);
CREATE TABLE sessions (session_id TEXT PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
"""


async def test_a_schema_1_journal_is_migrated_with_everything_in_it(tmp_path: Path) -> None:
    """Journals written before rows were keyed by seq (schema 1, keyed by task id) start as they were."""
    path = tmp_path / "tasks.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_1)
    for n in (1, 2, 3):
        r = task(n)
        values = (r.task_id, r.seq, r.pool_id, r.body, r.admitted_wall, r.queue_position, r.predicted_start_ms)
        conn.execute("INSERT INTO tasks (task_id, seq, pool, body, admitted_wall, queue_position, predicted_start_ms)"
                     " VALUES (?,?,?,?,?,?,?)", values)  # fmt: skip
    for e in (frames("t1", 1, 2), frames("t2", 1, 1), frames("t1", 3, 1)):
        conn.execute("INSERT INTO events VALUES (?,?,?)", (e.task_id, e.first_id, e.frames))
    conn.execute("UPDATE tasks SET state = 'done', replica = 'default/r0', settled = 1, finished_wall = 5.0"
                 " WHERE task_id = 't1'")  # fmt: skip
    conn.execute("INSERT INTO sessions VALUES ('s1', ?)", ('{"expires_wall":2e9,"turns":2,"tokens_used":30,'
                 '"pool":"default","replica":"default/r0","kv_warm":true,"budget":null}',))  # fmt: skip
    conn.commit()
    conn.close()

    store = SqliteStore(path)
    found = await store.recover()
    assert found.problems == [] and found.lost_task_ids == []
    assert [t.row for t in found.tasks] == [task(1), task(2), task(3)]
    assert found.tasks[0].frames.count(b"event: token") == 3 and found.tasks[1].frames.count(b"event: token") == 1
    assert found.tasks[0].state == TaskStateRow("t1", "done", "default/r0", True, 5.0)
    assert found.tasks[0].scrubbed and not found.tasks[1].scrubbed  # schema 1 scrubbed in the ending commit
    assert [s.session_id for s in found.sessions] == ["s1"]
    # The journal goes on in schema 3: new writes land, and nothing of the old file is left beside it.
    await store.write(Batch(admitted=[task(4)], events=[frames("t2", 2, 1)]))
    await store.aclose()
    assert names_in(tmp_path) == ["tasks.sqlite3"]
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
    check.close()
    again = SqliteStore(path)
    refound = await again.recover()
    assert refound.problems == [] and [t.row.task_id for t in refound.tasks] == ["t1", "t2", "t3", "t4"]
    assert refound.tasks[1].frames.count(b"event: token") == 2
    await again.aclose()


async def test_rows_are_keyed_by_seq_not_by_the_task_id(tmp_path: Path) -> None:
    """No index on the random task id (tasks append by seq), and none on events at all: a task's
    events are deleted by the rowid span the store keeps, filtered by seq."""
    store = await filled(tmp_path / "tasks.sqlite3", tasks=3)
    await store.aclose()
    conn = sqlite3.connect(tmp_path / "tasks.sqlite3")
    indexes = {name: sql for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")}
    sql = "EXPLAIN QUERY PLAN DELETE FROM events WHERE rowid BETWEEN 2 AND 5 AND seq = 2"
    plan = " ".join(str(r[-1]) for r in conn.execute(sql))
    on_tasks = conn.execute("PRAGMA index_list(tasks)").fetchall()  # an automatic one for a TEXT key too
    on_events = conn.execute("PRAGMA index_list(events)").fetchall()
    conn.close()
    assert on_tasks == [] and on_events == [] and not any("events" in (sql or "") for sql in indexes.values())
    assert "INTEGER PRIMARY KEY" in plan, plan  # a rowid range, not a scan of the table


async def test_interleaved_events_are_deleted_task_by_task(tmp_path: Path) -> None:
    """Rows of streaming tasks interleave in commit order: forgetting or scrubbing one task takes
    its rows only, before and after a restart (the spans are read again from the file)."""
    path = tmp_path / "tasks.sqlite3"
    store = SqliteStore(path)
    await store.recover()
    await store.write(Batch(admitted=[task(n) for n in (1, 2, 3)]))
    for first in range(1, 7):  # six commits, each with a row of every task
        await store.write(Batch(events=[frames(f"t{n}", first, 1) for n in (1, 2, 3)]))
    await store.write(Batch(forgotten_tasks=["t2"]))
    await store.write(Batch(scrubbed=[ScrubRow("t1", b"{}", b"id: 1\nevent: end\ndata: {}\n\n")]))
    await store.write(Batch(events=[frames("t3", 7, 1)]))
    await store.aclose()
    again = SqliteStore(path)
    found = await again.recover()
    by_id = {t.row.task_id: t for t in found.tasks}
    assert sorted(by_id) == ["t1", "t3"] and found.problems == []
    assert by_id["t1"].frames == b"id: 1\nevent: end\ndata: {}\n\n" and by_id["t1"].scrubbed
    assert by_id["t3"].frames.count(b"event: token") == 7
    await again.write(Batch(forgotten_tasks=["t3"], events=[frames("t1", 2, 1)]))
    await again.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT seq, count(*) FROM events GROUP BY seq").fetchall() == [(1, 2)]
    conn.close()


async def test_a_failed_write_leaves_the_spans_right(tmp_path: Path) -> None:
    store = await filled(tmp_path / "tasks.sqlite3", tasks=2)
    with pytest.raises(sqlite3.IntegrityError):  # refused after its events and delete ran
        await store.write(Batch(events=[frames("t2", 3, 5)], forgotten_tasks=["t1"], admitted=[task(2)]))
    await store.write(Batch(forgotten_tasks=["t2"]))
    await store.aclose()
    found = await SqliteStore(tmp_path / "tasks.sqlite3").recover()
    assert [(t.row.task_id, t.frames.count(b"event: token")) for t in found.tasks] == [("t1", 3)]


async def test_a_schema_2_journal_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = await filled(path, tasks=3)
    await store.aclose()
    conn = sqlite3.connect(path)  # as schema 2 left it
    conn.execute("CREATE INDEX events_seq ON events (seq)")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    again = SqliteStore(path)
    found = await again.recover()
    assert found.problems == [] and [t.row.task_id for t in found.tasks] == ["t1", "t2", "t3"]
    assert found.tasks[0].frames.count(b"event: token") == 3
    await again.write(Batch(forgotten_tasks=["t2"]))
    await again.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
    assert conn.execute("PRAGMA index_list(events)").fetchall() == []
    assert conn.execute("SELECT DISTINCT seq FROM events ORDER BY seq").fetchall() == [(1,), (3,)]
    conn.close()


def tasks_in(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY seq")]
    finally:
        conn.close()


async def test_forgotten_tasks_are_deleted_in_bulk(tmp_path: Path) -> None:
    """Past retention, tasks wait to be deleted FORGET_BULK at a time (or at close): one DELETE
    rewrites each page their interleaved rows share once."""
    path = tmp_path / "tasks.sqlite3"
    count = FORGET_BULK + 2
    store = await filled(path, tasks=count)
    await store.write(Batch(forgotten_tasks=["t1", "t2"]))
    assert tasks_in(path)[:2] == ["t1", "t2"]  # not yet
    await store.write(Batch(forgotten_tasks=[f"t{n}" for n in range(3, FORGET_BULK + 1)]))
    assert tasks_in(path) == [f"t{n}" for n in range(FORGET_BULK + 1, count + 1)]  # the bulk is gone
    await store.write(Batch(forgotten_tasks=[f"t{count}"]))
    await store.aclose()  # the rest at close
    assert tasks_in(path) == [f"t{FORGET_BULK + 1}"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT DISTINCT task_id FROM events").fetchall() == [(f"t{FORGET_BULK + 1}",)]
    conn.close()


async def test_a_crash_before_the_bulk_brings_forgotten_tasks_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = await filled(path, tasks=3)
    await store.write(Batch(forgotten_tasks=["t2"]))
    # No aclose: the process died. t2 comes back as it was (retention forgets it again).
    found = await SqliteStore(path).recover()
    assert [t.row.task_id for t in found.tasks] == ["t1", "t2", "t3"] and found.lost_task_ids == []
    assert found.tasks[1].frames.count(b"event: token") == 2


async def test_an_id_used_again_does_not_meet_its_old_rows(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = await filled(path, tasks=2)
    await store.write(Batch(forgotten_tasks=["t2"]))
    again = TaskRow("t2", 9, "default", b'{"prompt":"new","max_tokens":4}', 2000.0, 0, 0)
    await store.write(Batch(admitted=[again], events=[frames("t2", 1, 1)]))
    await store.aclose()
    found = await SqliteStore(path).recover()
    by_id = {t.row.task_id: t for t in found.tasks}
    assert by_id["t2"].row == again and by_id["t2"].frames.count(b"event: token") == 1
