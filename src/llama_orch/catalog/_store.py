"""SQLite persistence of catalog entries: one row per entry, the entry itself as JSON.

The catalog keeps every entry in memory and reads this file only when it opens; the table is the
durable copy. ``id`` and ``model_ref`` are columns (not only inside the JSON) so that SQLite itself
enforces their uniqueness. WAL with ``synchronous=FULL``: a committed write survives a crash of
orchestratord or of the machine, and catalog writes are rare enough that the fsync does not matter.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from llama_orch_api import CatalogModel

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog_models (
    id        TEXT PRIMARY KEY,
    model_ref TEXT NOT NULL UNIQUE,
    entry     TEXT NOT NULL
) STRICT
"""


class CatalogStore:
    """The table of entries. Thread-safe: writes come from worker threads, one at a time."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> list[CatalogModel]:
        """Open (creating the file and table when needed) and return every stored entry."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: calls arrive from the default executor's threads; self._lock
        # serialises them. isolation_level=None: transactions are explicit (``with conn``).
        conn = sqlite3.connect(
            ":memory:" if self.path is None else self.path, check_same_thread=False, isolation_level=None
        )
        try:
            if self.path is not None:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise RuntimeError(f"catalog {self.path}: SQLite refused WAL mode (got {mode!r})")
                conn.execute("PRAGMA synchronous=FULL")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"catalog {self.path}: schema version {version} is newer than this orchestratord ({SCHEMA_VERSION})"
                )
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            rows = conn.execute("SELECT entry FROM catalog_models ORDER BY id").fetchall()
            # A row that no longer parses stops the start: skipping it would silently make a model
            # whose verification failed admissible again (the catalog is opt-in per model_ref).
            entries = [CatalogModel.model_validate_json(row[0]) for row in rows]
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return entries

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the catalog is not open")
        return self._conn

    def insert(self, entry: CatalogModel) -> None:
        """Store a new entry; ``sqlite3.IntegrityError`` when its id or model_ref is taken."""
        with self._lock:
            conn = self._connection()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO catalog_models (id, model_ref, entry) VALUES (?, ?, ?)",
                    (entry.id, entry.model_ref, entry.model_dump_json()),
                )

    def update(self, entry: CatalogModel) -> bool:
        """Replace a stored entry; False when there is none with its id."""
        with self._lock:
            conn = self._connection()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                cursor = conn.execute(
                    "UPDATE catalog_models SET model_ref = ?, entry = ? WHERE id = ?",
                    (entry.model_ref, entry.model_dump_json(), entry.id),
                )
            return cursor.rowcount == 1

    def delete(self, entry_id: str) -> bool:
        """Remove an entry; False when there was none."""
        with self._lock:
            conn = self._connection()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                cursor = conn.execute("DELETE FROM catalog_models WHERE id = ?", (entry_id,))
            return cursor.rowcount == 1
