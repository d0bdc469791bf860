"""The artifact index: metadata, tags and small contents in SQLite (WAL mode).

Blocking: an :class:`Index` is used by one thread only (the store's database thread). Every write
is one ``BEGIN IMMEDIATE`` transaction, so writers in other threads or processes on the same file
serialize on SQLite's lock (waiting up to ``busy_timeout``) instead of losing updates.

Durability: ``synchronous=NORMAL`` in WAL mode, so a commit survives a crash of orchestratord; a
power cut may roll back the last few commits, never corrupt the file. Blobs are fsynced before
the row naming them commits, so a row never points at missing content.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llama_orch.artifacts._ids import Encoded, Encoding
from llama_orch.errors import OrchError
from llama_orch_api import ArtifactRef, ErrorCode

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: listing order and cursor
    id          TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    parent      TEXT REFERENCES artifacts(id),
    session_id  TEXT,
    task_id     TEXT,
    media_type  TEXT NOT NULL,
    encoding    TEXT NOT NULL CHECK (encoding IN ('text', 'json')),
    size_bytes  INTEGER NOT NULL,
    blob_sha256 TEXT,                               -- set when the content is in the blob folder
    inline      BLOB,                               -- the content otherwise
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_kind ON artifacts(kind, seq);
CREATE INDEX IF NOT EXISTS artifacts_session ON artifacts(session_id, seq);
CREATE INDEX IF NOT EXISTS artifacts_task ON artifacts(task_id, seq);
CREATE INDEX IF NOT EXISTS artifacts_parent ON artifacts(parent, seq);
CREATE TABLE IF NOT EXISTS artifact_tags (
    artifact_seq INTEGER NOT NULL REFERENCES artifacts(seq),
    tag          TEXT NOT NULL,
    PRIMARY KEY (artifact_seq, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS artifact_tags_tag ON artifact_tags(tag, artifact_seq);
"""

_REF_COLUMNS = """
    a.seq, a.id, a.kind, a.parent, a.session_id, a.task_id, a.media_type, a.size_bytes, a.created_at,
    (SELECT json_group_array(tag) FROM
        (SELECT tag FROM artifact_tags t WHERE t.artifact_seq = a.seq ORDER BY tag)) AS tags
"""


_REF_FIELDS = ("id", "kind", "parent", "session_id", "task_id", "media_type", "size_bytes", "created_at")


@dataclass(frozen=True)
class NewArtifact:
    """What :meth:`Index.add` records (content already encoded, and its blob written if any)."""

    encoded: Encoded
    kind: str
    parent: str | None
    tags: Sequence[str]
    session_id: str | None
    task_id: str | None
    media_type: str
    in_blob: bool


@dataclass(frozen=True)
class Stored:
    """A row as read back: the ref plus where its content is."""

    ref: ArtifactRef
    encoding: Encoding
    blob_sha256: str | None
    inline: bytes | None


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the artifact index is not open")
        return self._db

    def open(self) -> None:
        # isolation_level=None: no implicit transactions; each write opens its own BEGIN IMMEDIATE.
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer llama-orch (artifact schema {version} > {SCHEMA_VERSION})"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def add(self, new: NewArtifact) -> tuple[ArtifactRef, bool]:
        """Record ``new``, or merge its tags into the artifact with the same id; (ref, created)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT seq FROM artifacts WHERE id = ?", (new.encoded.id,)).fetchone()
            created = row is None
            if created:
                if new.parent is not None and self._seq_of(new.parent) is None:
                    raise OrchError(
                        ErrorCode.INVALID_PARAMS,
                        f"invalid request: parent: no artifact {new.parent}",
                        details={"errors": [{"loc": "parent", "msg": "no such artifact", "type": "not_found"}]},
                    )
                seq = db.execute(
                    "INSERT INTO artifacts (id, kind, parent, session_id, task_id, media_type, encoding, "
                    "size_bytes, blob_sha256, inline, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING seq",
                    (
                        new.encoded.id,
                        new.kind,
                        new.parent,
                        new.session_id,
                        new.task_id,
                        new.media_type,
                        new.encoded.encoding,
                        len(new.encoded.data),
                        new.encoded.sha256 if new.in_blob else None,
                        None if new.in_blob else new.encoded.data,
                        _now(),
                    ),
                ).fetchone()[0]
            else:
                seq = row["seq"]
            db.executemany(
                "INSERT OR IGNORE INTO artifact_tags (artifact_seq, tag) VALUES (?, ?)",
                [(seq, tag) for tag in set(new.tags)],
            )
            ref = self._ref_by_seq(seq)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return ref, created

    def get(self, artifact_id: str) -> Stored | None:
        row = self.db.execute(
            f"SELECT {_REF_COLUMNS}, a.encoding, a.blob_sha256, a.inline FROM artifacts a WHERE a.id = ?",
            (artifact_id,),
        ).fetchone()
        if row is None:
            return None
        return Stored(_ref(row), row["encoding"], row["blob_sha256"], row["inline"])

    def find(
        self,
        *,
        tags: Sequence[str] = (),
        kind: str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        parent: str | None = None,
        limit: int = 100,
        before_seq: int | None = None,
    ) -> tuple[list[ArtifactRef], int | None]:
        """Up to ``limit`` refs matching every filter, newest first; and the cursor of the next page."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("kind", kind), ("session_id", session_id), ("task_id", task_id), ("parent", parent)):
            if value is not None:
                where.append(f"a.{column} = ?")
                args.append(value)
        for tag in dict.fromkeys(tags):
            where.append("a.seq IN (SELECT artifact_seq FROM artifact_tags WHERE tag = ?)")
            args.append(tag)
        if before_seq is not None:
            where.append("a.seq < ?")
            args.append(before_seq)
        sql = f"SELECT {_REF_COLUMNS} FROM artifacts a"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # One row more than asked tells whether there is a next page without a COUNT.
        rows = self.db.execute(sql + " ORDER BY a.seq DESC LIMIT ?", (*args, limit + 1)).fetchall()
        next_seq = rows[limit - 1]["seq"] if len(rows) > limit else None
        return [_ref(row) for row in rows[:limit]], next_seq

    def lineage(self, artifact_id: str) -> list[ArtifactRef] | None:
        """The artifact's ancestors, parent first; None when the artifact does not exist."""
        if self._seq_of(artifact_id) is None:
            return None
        # Ids hash their parent's id, so a chain cannot loop; the depth bound is belt and braces.
        rows = self.db.execute(
            f"""
            WITH RECURSIVE chain(id, depth) AS (
                SELECT parent, 1 FROM artifacts WHERE id = ? AND parent IS NOT NULL
                UNION ALL
                SELECT a.parent, chain.depth + 1 FROM artifacts a JOIN chain ON a.id = chain.id
                WHERE a.parent IS NOT NULL AND chain.depth < 100000
            )
            SELECT {_REF_COLUMNS} FROM chain JOIN artifacts a ON a.id = chain.id ORDER BY chain.depth
            """,
            (artifact_id,),
        ).fetchall()
        return [_ref(row) for row in rows]

    def _seq_of(self, artifact_id: str) -> int | None:
        row = self.db.execute("SELECT seq FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return None if row is None else int(row["seq"])

    def _ref_by_seq(self, seq: int) -> ArtifactRef:
        return _ref(self.db.execute(f"SELECT {_REF_COLUMNS} FROM artifacts a WHERE a.seq = ?", (seq,)).fetchone())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ref(row: sqlite3.Row) -> ArtifactRef:
    fields = {name: row[name] for name in _REF_FIELDS}
    fields["tags"] = json.loads(row["tags"])
    return ArtifactRef.model_validate(fields)
