"""The embedded task store: one SQLite file in WAL mode, ``<data_dir>/tasks.sqlite3``.

Writes run on the event loop, one transaction per group commit (:class:`~llama_orch.scheduler._store.Batch`):
with WAL and ``synchronous=NORMAL`` a commit is a ``write()`` to the WAL file and no ``fsync``, so it
costs tens of microseconds and survives a crash of the process (SIGKILL) — not a power loss or a
kernel crash; ``synchronous: full`` (config ``journal.synchronous``) adds an ``fsync`` per commit for
that. Checkpoints (copying the WAL into the database file, with its ``fsync``) are taken off the
loop, in a thread with its own connection, so they never stall admission or the relay.

Damage: at start the file is checked (``PRAGMA quick_check``). A file that fails (truncated,
overwritten, not a database) is moved aside as ``tasks.sqlite3.damaged-<time>``, every row that can
still be read from it is copied into a fresh file, and what could not be read is reported
(:attr:`Recovered.problems`); the orchestrator then starts with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from llama_orch.scheduler._store import (
    Batch,
    Recovered,
    SessionRow,
    StoredTask,
    TaskRow,
    TaskStateRow,
    TaskStore,
)

log = logging.getLogger("llama_orch.journal")

SCHEMA_VERSION = 1
CHECKPOINT_PAGES = 4000
"""Checkpoint (in a thread) once the WAL has grown by about this many pages (~16 MB)."""
_SALVAGE_PROBES = 20_000
"""Rowids probed one by one past a damaged part of a table before giving up on the rest."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    pool TEXT NOT NULL,
    body BLOB NOT NULL,
    admitted_wall REAL NOT NULL,
    queue_position INTEGER NOT NULL,
    predicted_start_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    replica TEXT,
    settled INTEGER NOT NULL DEFAULT 0,
    finished_wall REAL
);
CREATE TABLE IF NOT EXISTS events (task_id TEXT NOT NULL, first_id INTEGER NOT NULL, frames BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_task ON events (task_id);
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""

_TASK_COLUMNS = (
    "task_id, seq, pool, body, admitted_wall, queue_position, predicted_start_ms, "
    "state, replica, settled, finished_wall"
)


class SqliteStore(TaskStore):
    """:class:`TaskStore` on one SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, *, synchronous: Literal["normal", "full"] = "normal") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._pages_since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None

    # -- opening and recovery -------------------------------------------------------------------

    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # taken off the loop instead (see _maybe_checkpoint)
        conn.execute("PRAGMA secure_delete=ON")  # scrubbed requests and events leave no copy in free pages
        return conn

    def _create(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(self.path)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        return conn

    async def recover(self) -> Recovered:
        return self._recover()

    def _recover(self) -> Recovered:
        if not self.path.exists():
            self._conn = self._create()
            return Recovered()
        why = self._damage()
        if why is None:
            self._conn = self._create()
            return _read(self._conn, Recovered(), strict=False)
        return self._salvage(why)

    def _damage(self) -> str | None:
        """Why the file cannot be trusted as a whole, or None when it checks out."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                if rows != [("ok",)]:
                    return "; ".join(str(r[0]) for r in rows[:5])
                version = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if version is None or version[0] != str(SCHEMA_VERSION):
                    return f"unknown schema version {version[0] if version else None!r}"
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None

    def _salvage(self, why: str) -> Recovered:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        damaged = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{damaged}{suffix}"))
        found = Recovered(problems=[f"task journal {self.path} is damaged ({why}); moved it to {damaged}"])
        log.error("%s; copying what can still be read into a fresh journal", found.problems[0])
        try:
            old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, isolation_level=None)
            # A truncated file has fewer pages than its header says; with writable_schema SQLite
            # reads what is there instead of refusing the whole file (nothing is written).
            old.execute("PRAGMA writable_schema=ON")
        except sqlite3.DatabaseError as exc:
            found.problems.append(f"nothing could be read from it: {exc}")
            self._conn = self._create()
            return found
        try:
            _read(old, found, strict=True)
        finally:
            old.close()
        self._conn = self._create()
        self._copy_in(found)
        return found

    def _copy_in(self, found: Recovered) -> None:
        """Write what was salvaged into the fresh file, so the next start finds it there."""
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        for task in found.tasks:
            r = task.row
            conn.execute(
                f"INSERT OR IGNORE INTO tasks ({_TASK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    r.task_id,
                    r.seq,
                    r.pool_id,
                    r.body,
                    r.admitted_wall,
                    r.queue_position,
                    r.predicted_start_ms,
                    task.state.state if task.state else "queued",
                    task.state.replica_id if task.state else None,
                    int(task.state.settled) if task.state else 0,
                    task.state.finished_wall if task.state else None,
                ),
            )
            if task.frames:
                conn.execute("INSERT INTO events VALUES (?, 1, ?)", (r.task_id, task.frames))
        conn.executemany(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?)", [(s.session_id, _session_json(s)) for s in found.sessions]
        )
        conn.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------------

    async def write(self, batch: Batch) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the task store is not open (recover() first)")
        try:
            conn.execute("BEGIN")
            if batch.admitted:
                conn.executemany(
                    "INSERT INTO tasks (task_id, seq, pool, body, admitted_wall, queue_position, predicted_start_ms)"
                    " VALUES (?,?,?,?,?,?,?)",
                    [
                        (r.task_id, r.seq, r.pool_id, r.body, r.admitted_wall, r.queue_position, r.predicted_start_ms)
                        for r in batch.admitted
                    ],
                )
            if batch.states:
                conn.executemany(
                    "UPDATE tasks SET state = ?, replica = ?, settled = ?, finished_wall = ? WHERE task_id = ?",
                    [(s.state, s.replica_id, int(s.settled), s.finished_wall, s.task_id) for s in batch.states],
                )
            if batch.events:
                conn.executemany(
                    "INSERT INTO events VALUES (?,?,?)", [(e.task_id, e.first_id, e.frames) for e in batch.events]
                )
            if batch.scrubbed:
                conn.executemany(
                    "UPDATE tasks SET body = ? WHERE task_id = ?", [(r.body, r.task_id) for r in batch.scrubbed]
                )
                conn.executemany("DELETE FROM events WHERE task_id = ?", [(r.task_id,) for r in batch.scrubbed])
                conn.executemany("INSERT INTO events VALUES (?, 1, ?)", [(r.task_id, r.frames) for r in batch.scrubbed])
            if batch.sessions:
                conn.executemany(
                    "INSERT OR REPLACE INTO sessions VALUES (?, ?)",
                    [(s.session_id, _session_json(s)) for s in batch.sessions],
                )
            if batch.deleted_sessions:
                conn.executemany("DELETE FROM sessions WHERE session_id = ?", [(s,) for s in batch.deleted_sessions])
            if batch.forgotten_tasks:
                gone = [(t,) for t in batch.forgotten_tasks]
                conn.executemany("DELETE FROM events WHERE task_id = ?", gone)
                conn.executemany("DELETE FROM tasks WHERE task_id = ?", gone)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._pages_since_checkpoint += 1 + (len(batch.admitted) + len(batch.events)) // 8
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        if self._pages_since_checkpoint < CHECKPOINT_PAGES or (self._checkpoint and not self._checkpoint.done()):
            return
        self._pages_since_checkpoint = 0
        self._checkpoint = asyncio.get_running_loop().create_task(
            asyncio.to_thread(_checkpoint, self.path), name="journal-checkpoint"
        )

    async def aclose(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None


def _checkpoint(path: Path) -> None:
    """A passive checkpoint from its own connection: never blocks the writer."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:
        log.warning("journal checkpoint failed: %s", exc)
    finally:
        conn.close()


def _session_json(s: SessionRow) -> str:
    return json.dumps(
        {
            "expires_wall": s.expires_wall,
            "turns": s.turns,
            "tokens_used": s.tokens_used,
            "pool": s.pool,
            "replica": s.replica,
            "kv_warm": s.kv_warm,
            "budget": s.budget,
        },
        separators=(",", ":"),
    )


# -- reading (also from damaged files) ----------------------------------------------------------


def _rows(
    conn: sqlite3.Connection, table: str, columns: str, found: Recovered, strict: bool
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``table`` in rowid order. ``strict`` (a damaged file): where a scan fails, probe
    the following rowids one by one (bounded) until rows can be read again, and report the damage."""
    last, skipped = 0, 0
    scan = f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid"
    probe = f"SELECT rowid, {columns} FROM {table} WHERE rowid = ?"
    while True:
        try:
            for row in conn.execute(scan, (last,)):
                last = row[0]
                yield row[1:]
            break
        except sqlite3.DatabaseError:
            if not strict:
                raise
        # Step over the damaged part: point look-ups need only the path to their own row.
        rowid, resumed = last + 1, False
        while rowid - last <= _SALVAGE_PROBES:
            try:
                row = conn.execute(probe, (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is not None:
                skipped += rowid - last - 1
                last, resumed = rowid, True
                yield row[1:]
                break
            rowid += 1
        if not resumed:
            found.problems.append(f"table {table}: the rows after rowid {last} could not be read (lost)")
            break
    if skipped:
        found.problems.append(f"table {table}: up to {skipped} row(s) in damaged parts could not be read (lost)")


def _read(conn: sqlite3.Connection, found: Recovered, *, strict: bool) -> Recovered:
    tasks: dict[str, StoredTask] = {}
    bad: dict[str, int] = {}
    try:
        for r in _rows(conn, "tasks", _TASK_COLUMNS, found, strict):
            try:
                task_id, seq, pool, body, wall, position, predicted, state, replica, settled, finished = r
                row = TaskRow(
                    str(task_id), int(seq), str(pool), bytes(body), float(wall), int(position), int(predicted)
                )
                state_row = TaskStateRow(
                    row.task_id, str(state), None if replica is None else str(replica), bool(settled), finished
                )
            except (TypeError, ValueError):
                bad["tasks"] = bad.get("tasks", 0) + 1
                continue
            tasks[row.task_id] = StoredTask(row, state_row, b"")
    except sqlite3.DatabaseError as exc:
        found.problems.append(f"table tasks could not be read: {exc}")
    events: dict[str, list[tuple[int, bytes]]] = {}
    try:
        for task_id, first_id, frames in _rows(conn, "events", "task_id, first_id, frames", found, strict):
            if isinstance(task_id, str) and isinstance(first_id, int) and isinstance(frames, bytes):
                events.setdefault(task_id, []).append((first_id, frames))
            else:
                bad["events"] = bad.get("events", 0) + 1
    except sqlite3.DatabaseError as exc:
        found.problems.append(f"table events could not be read: {exc}")
    for task_id, chunks in events.items():
        task = tasks.get(task_id)
        if task is None:
            found.lost_task_ids.append(task_id)
            continue
        chunks.sort()
        task.frames = b"".join(frames for _, frames in chunks)
    try:
        for session_id, body in _rows(conn, "sessions", "session_id, body", found, strict):
            try:
                data = json.loads(body)
                found.sessions.append(
                    SessionRow(
                        str(session_id),
                        float(data["expires_wall"]),
                        int(data["turns"]),
                        int(data["tokens_used"]),
                        data["pool"],
                        data["replica"],
                        bool(data["kv_warm"]),
                        data["budget"],
                    )
                )
            except (ValueError, KeyError, TypeError):
                bad["sessions"] = bad.get("sessions", 0) + 1
    except sqlite3.DatabaseError as exc:
        found.problems.append(f"table sessions could not be read: {exc}")
    for table, count in bad.items():
        found.problems.append(f"table {table}: {count} damaged row(s) could not be used (lost)")
    found.tasks = sorted(tasks.values(), key=lambda t: t.row.seq)
    return found


__all__ = ["SqliteStore"]
