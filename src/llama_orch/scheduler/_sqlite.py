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

Schema 1 (before 2026-12-03: rows keyed by task id) is migrated at start: its rows are copied into
a fresh file and the old file is removed. Schema 2 (with an index on the events' seq) is upgraded in
place: the index is dropped.
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

SCHEMA_VERSION = 3
"""3: no index on events (see ``_SCHEMA``); 2: rows keyed by the admission sequence number (appends at
the end of one B-tree, no index on the random task id), upgraded in place; 1 (keyed by task id) is
migrated at start."""
FORGET_BULK = 64
"""Tasks past retention are deleted this many at a time (at the latest when the store closes): the
rows of tasks that streamed together share pages, and one DELETE for all of them rewrites each page
once instead of once per task (32 tasks of 2,000 interleaved rows: 59 ms in one, 826 ms one by one)."""
CHECKPOINT_PAGES = 4000
"""Checkpoint (in a thread) once the WAL has grown by about this many pages (~16 MB)."""
_SALVAGE_PROBES = 20_000
"""Rowids probed one by one past a damaged part of a table before giving up on the rest."""

# Keyed by ``seq`` (monotonic: each admission appends at the right edge of the tasks table) instead
# of the random 32-hex task id, whose index took a random leaf page per row: a group commit of 64
# admissions wrote ~2.4x the pages. The task id is still in every row (events too: a damaged tasks
# table still says which tasks had events), looked up in memory, never by SQL.
# Events have no index at all: rows append in commit order (rowid), and a task's rows are found
# by the rowid span the store keeps for it in memory (rebuilt at start), filtered by seq. An index
# on seq (schema 2) put each commit's N rows of N streaming tasks at N places of it: ~9 us a row
# instead of ~3 (32 rows a commit, the relay at 1,000 tokens/s a stream).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    pool TEXT NOT NULL,
    body BLOB NOT NULL,
    admitted_wall REAL NOT NULL,
    queue_position INTEGER NOT NULL,
    predicted_start_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    replica TEXT,
    settled INTEGER NOT NULL DEFAULT 0,
    finished_wall REAL,
    scrubbed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER NOT NULL, first_id INTEGER NOT NULL, task_id TEXT NOT NULL, frames BLOB NOT NULL
);
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
        self._seq: dict[str, int] = {}
        """task id -> seq of every task in the file (rows are keyed by seq)."""
        self._forgetting: dict[str, int] = {}
        """task id -> seq of tasks forgotten but not deleted yet (see ``FORGET_BULK``); a crash before
        they are deleted brings them back at start, ended, and retention forgets them again."""
        self._spans: dict[int, list[int]] | None = {}
        """seq -> [first, last] rowid of the task's events rows (None: to be read again from the file)."""

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
        why, version = self._damage()
        if why is None and version == 1:
            return self._migrate()
        if why is None:
            self._conn = self._create()
            if version == 2:
                self._conn.execute("DROP INDEX IF EXISTS events_seq")
                self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
                log.info("task journal %s: schema 2 upgraded to %d (events index dropped)", self.path, SCHEMA_VERSION)
            return self._remember(_read(self._conn, Recovered(), strict=False, version=SCHEMA_VERSION))
        return self._salvage(why, version)

    def _remember(self, found: Recovered) -> Recovered:
        self._seq = {t.row.task_id: t.row.seq for t in found.tasks}
        self._spans = self._read_spans()
        return found

    def _read_spans(self) -> dict[int, list[int]]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT seq, min(rowid), max(rowid) FROM events GROUP BY seq")
        return {seq: [lo, hi] for seq, lo, hi in rows}

    def _appended(self, seqs: list[int]) -> None:
        """Rows of ``seqs`` (in order) were just inserted: they took consecutive rowids up to the last."""
        assert self._conn is not None and self._spans is not None
        last = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        spans = self._spans
        for rowid, n in enumerate(seqs, last - len(seqs) + 1):
            span = spans.get(n)
            if span is None:
                spans[n] = [rowid, rowid]
            else:
                span[1] = rowid

    def _delete_events(self, seqs: list[int]) -> None:
        """Delete the events rows of ``seqs``: one rowid range scan (no index) for all of them."""
        assert self._conn is not None and self._spans is not None
        spans = self._spans
        found = [(n, span) for n in seqs if (span := spans.pop(n, None)) is not None]
        for at in range(0, len(found), 500):  # well under SQLite's limit of bound values
            part = found[at : at + 500]
            lo, hi = min(span[0] for _, span in part), max(span[1] for _, span in part)
            marks = ",".join("?" * len(part))
            self._conn.execute(
                f"DELETE FROM events WHERE rowid BETWEEN ? AND ? AND seq IN ({marks})", (lo, hi, *(n for n, _ in part))
            )

    def _delete_tasks(self, forgetting: dict[str, int]) -> None:
        assert self._conn is not None
        gone = list(forgetting.values())
        self._delete_events(gone)
        self._conn.executemany("DELETE FROM tasks WHERE seq = ?", [(n,) for n in gone])

    def _damage(self) -> tuple[str | None, int]:
        """Why the file cannot be trusted as a whole (None when it checks out), and its schema version."""
        version = SCHEMA_VERSION
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                if rows != [("ok",)]:
                    return "; ".join(str(r[0]) for r in rows[:5]), _version_of(conn)
                found = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if found is None or found[0] not in ("1", "2", str(SCHEMA_VERSION)):
                    return f"unknown schema version {found[0] if found else None!r}", version
                version = int(found[0])
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            return str(exc), version
        return None, version

    def _migrate(self) -> Recovered:
        """A journal of schema 1 (rows keyed by task id): copied into a fresh schema-2 file, then removed."""
        old = self.path.with_name(f"{self.path.name}.v1-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{old}{suffix}"))
        conn = sqlite3.connect(old, isolation_level=None)
        try:
            found = _read(conn, Recovered(), strict=False, version=1)
        finally:
            conn.close()
        self._conn = self._create()
        self._copy_in(found)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{old}{suffix}").unlink(missing_ok=True)
        log.info("task journal %s: schema 1 migrated to %d (%d task(s))", self.path, SCHEMA_VERSION, len(found.tasks))
        return self._remember(found)

    def _salvage(self, why: str, version: int) -> Recovered:
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
            return self._remember(found)
        try:
            _read(old, found, strict=True, version=version)
        finally:
            old.close()
        self._conn = self._create()
        self._copy_in(found)
        return self._remember(found)

    def _copy_in(self, found: Recovered) -> None:
        """Write what was salvaged (or migrated) into the fresh file, so the next start finds it there."""
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        for task in found.tasks:
            r, state = task.row, task.state
            conn.execute(
                f"INSERT OR IGNORE INTO tasks ({_TASK_COLUMNS}, scrubbed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    r.task_id,
                    r.seq,
                    r.pool_id,
                    r.body,
                    r.admitted_wall,
                    r.queue_position,
                    r.predicted_start_ms,
                    state.state if state else "queued",
                    state.replica_id if state else None,
                    int(state.settled) if state else 0,
                    state.finished_wall if state else None,
                    int(task.scrubbed),
                ),
            )
            if task.frames:
                conn.execute("INSERT INTO events VALUES (?, 1, ?, ?)", (r.seq, r.task_id, task.frames))
        conn.executemany(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?)", [(s.session_id, _session_json(s)) for s in found.sessions]
        )
        conn.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------------

    async def write(self, batch: Batch) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the task store is not open (recover() first)")
        seq = self._seq
        # Forgotten first: a task admitted in the same batch may take a forgotten one's id.
        newly = {t: n for t in batch.forgotten_tasks if (n := seq.pop(t, None)) is not None}
        for r in batch.admitted:
            seq.setdefault(r.task_id, r.seq)
        if self._spans is None:  # a failed write left them unknown
            self._spans = self._read_spans()
        try:
            conn.execute("BEGIN")
            if batch.admitted:
                conn.executemany(
                    f"INSERT INTO tasks ({_TASK_COLUMNS[: _TASK_COLUMNS.index(', state')]}) VALUES (?,?,?,?,?,?,?)",
                    [
                        (r.task_id, r.seq, r.pool_id, r.body, r.admitted_wall, r.queue_position, r.predicted_start_ms)
                        for r in batch.admitted
                    ],
                )
            if batch.states:
                conn.executemany(
                    "UPDATE tasks SET state = ?, replica = ?, settled = ?, finished_wall = ? WHERE seq = ?",
                    [
                        (s.state, s.replica_id, int(s.settled), s.finished_wall, seq[s.task_id])
                        for s in batch.states
                        if s.task_id in seq
                    ],
                )
            if batch.events:
                rows = [(seq[e.task_id], e.first_id, e.task_id, e.frames) for e in batch.events if e.task_id in seq]
                if rows:
                    conn.executemany("INSERT INTO events VALUES (?,?,?,?)", rows)
                    self._appended([r[0] for r in rows])
            if batch.scrubbed:
                scrubbed = [(seq[r.task_id], r) for r in batch.scrubbed if r.task_id in seq]
                conn.executemany(
                    "UPDATE tasks SET body = ?, scrubbed = 1 WHERE seq = ?", [(r.body, n) for n, r in scrubbed]
                )
                rewritten = [(n, r) for n, r in scrubbed if r.frames is not None]
                self._delete_events([n for n, _ in rewritten])
                if rewritten:
                    conn.executemany(
                        "INSERT INTO events VALUES (?, 1, ?, ?)", [(n, r.task_id, r.frames) for n, r in rewritten]
                    )
                    self._appended([n for n, _ in rewritten])
            if batch.sessions:
                conn.executemany(
                    "INSERT OR REPLACE INTO sessions VALUES (?, ?)",
                    [(s.session_id, _session_json(s)) for s in batch.sessions],
                )
            if batch.deleted_sessions:
                conn.executemany("DELETE FROM sessions WHERE session_id = ?", [(s,) for s in batch.deleted_sessions])
            forgetting = {**self._forgetting, **newly} if newly else self._forgetting
            # A task id used again (the client names its tasks) must not meet its old rows at start.
            if len(forgetting) >= FORGET_BULK or any(r.task_id in forgetting for r in batch.admitted):
                self._delete_tasks(forgetting)
                forgetting = {}
            conn.execute("COMMIT")
        except BaseException:
            self._spans = None  # as the rolled-back transaction left them: read again before the next write
            for t, n in newly.items():  # the journal gives the batch again
                seq.setdefault(t, n)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._forgetting = forgetting
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
            if self._forgetting and self._spans is not None:
                try:
                    self._conn.execute("BEGIN")
                    self._delete_tasks(self._forgetting)
                    self._conn.execute("COMMIT")
                    self._forgetting = {}
                except sqlite3.Error as exc:
                    log.warning("task journal: deleting %d forgotten task(s) failed: %s", len(self._forgetting), exc)
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
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
    # A damaged tree can give rows out of order, and the same row again after a resumed scan: in a
    # damaged file each rowid is given once and the scan only ever resumes past the highest one, so
    # the salvage ends (it looped for ever on a file cut in the middle of the tasks table).
    seen: set[int] | None = set() if strict else None
    while True:
        try:
            for row in conn.execute(scan, (last,)):
                if seen is None:
                    last = row[0]
                else:
                    if row[0] in seen:
                        continue
                    seen.add(row[0])
                    last = max(last, row[0])
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
                if seen is not None:
                    seen.add(rowid)
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


def _version_of(conn: sqlite3.Connection) -> int:
    """The schema version a (possibly damaged) file says it has; the current one if it cannot say."""
    try:
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return int(found[0]) if found is not None else SCHEMA_VERSION
    except (sqlite3.DatabaseError, ValueError, TypeError):
        return SCHEMA_VERSION


def _read(conn: sqlite3.Connection, found: Recovered, *, strict: bool, version: int) -> Recovered:
    tasks: dict[str, StoredTask] = {}
    bad: dict[str, int] = {}
    # Schema 1 scrubbed a task in the commit that ended it: an ended task there is scrubbed.
    columns = _TASK_COLUMNS + (", scrubbed" if version >= 2 else ", state IN ('done', 'failed', 'cancelled')")
    try:
        for r in _rows(conn, "tasks", columns, found, strict):
            try:
                task_id, seq, pool, body, wall, position, predicted, state, replica, settled, finished, scrubbed = r
                row = TaskRow(
                    str(task_id), int(seq), str(pool), bytes(body), float(wall), int(position), int(predicted)
                )
                state_row = TaskStateRow(
                    row.task_id, str(state), None if replica is None else str(replica), bool(settled), finished
                )
            except (TypeError, ValueError):
                bad["tasks"] = bad.get("tasks", 0) + 1
                continue
            tasks[row.task_id] = StoredTask(row, state_row, b"", bool(scrubbed))
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
