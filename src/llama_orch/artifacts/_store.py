"""The artifact store: content-addressed agent outputs with tags and lineage (OC-CLI-2301).

On disk, under ``data_dir``::

    artifacts.sqlite3          the index (SQLite, WAL): metadata, tags, contents up to inline_max_bytes
    blobs/sha256/ab/cdef...    larger contents, named by the SHA-256 of their stored bytes

Threads: SQLite runs on one dedicated thread per store (its connection never leaves it, and small
writes cost one hop to it); canonicalizing, hashing and fsyncing a large content run in a worker
thread (:func:`asyncio.to_thread`) so that neither the event loop nor the small writes queued on the
database thread wait for them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from pydantic import JsonValue

from llama_orch.artifacts._blobs import BlobStore
from llama_orch.artifacts._ids import decode, encode, normalize_id
from llama_orch.artifacts._index import Index, NewArtifact, Stored
from llama_orch.errors import OrchError
from llama_orch_api import (
    Artifact,
    ArtifactCreate,
    ArtifactKind,
    ArtifactLineage,
    ArtifactList,
    ArtifactRef,
    ErrorCode,
)

log = logging.getLogger("llama_orch.artifacts")

DEFAULT_INLINE_MAX_BYTES = 64 * 1024
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
MAX_PAGE = 1000

T = TypeVar("T")


class ArtifactStore:
    """Content-addressed artifacts with tags and lineage, in SQLite plus a blob folder.

    ``data_dir=None`` keeps everything in a temporary directory deleted by :meth:`aclose`.

    >>> async with ArtifactStore("./data") as store:                        # doctest: +SKIP
    ...     plan = await store.put(kind="plan", content="# Plan\\n1. ...", tags=["loop:42"])
    ...     diff = await store.put(kind="diff", content=patch, parent=plan.id, task_id="t-7")
    ...     [a.id for a in (await store.lineage(diff.id)).ancestors] == [plan.id]
    True
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None,
        *,
        inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._data_dir = None if data_dir is None else Path(data_dir)
        self.inline_max_bytes = inline_max_bytes
        self.max_bytes = max_bytes
        self._root: Path | None = None
        self._index: Index | None = None
        self._blobs: BlobStore | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def ephemeral(self) -> bool:
        """True when the store lives in a temporary directory that closing deletes."""
        return self._data_dir is None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the artifact store is not open")
        return self._root

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> Self:
        if self._executor is not None:
            raise RuntimeError("the artifact store is already open")
        if self._data_dir is None:
            root = Path(tempfile.mkdtemp(prefix="llorch-artifacts-"))
            log.warning(
                "no data_dir configured: artifacts are kept in %s and deleted at shutdown",
                root,
                extra={"narration": "artifacts are temporary; set data_dir to keep them"},
            )
        else:
            root = self._data_dir
            root.mkdir(parents=True, exist_ok=True)
        index = Index(root / "artifacts.sqlite3")
        blobs = BlobStore(root / "blobs" / "sha256")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llorch-artifacts-db")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, index.open)
            swept = await asyncio.to_thread(blobs.sweep)
        except BaseException:
            executor.shutdown(wait=False)
            if self._data_dir is None:
                shutil.rmtree(root, ignore_errors=True)
            raise
        self._root, self._index, self._blobs, self._executor = root, index, blobs, executor
        log.info(
            "artifact store open at %s",
            root,
            extra={"narration": f"artifacts in {root}" + (f", removed {swept} stale temp files" if swept else "")},
        )
        return self

    async def aclose(self) -> None:
        """Close the index (after every operation already submitted); delete it when ephemeral."""
        executor, index, root = self._executor, self._index, self._root
        if executor is None or index is None or root is None:
            return
        self._executor = self._index = self._blobs = self._root = None
        try:
            await asyncio.get_running_loop().run_in_executor(executor, index.close)
        finally:
            executor.shutdown(wait=False)
            if self._data_dir is None:
                await asyncio.to_thread(shutil.rmtree, root, True)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- writing ----------------------------------------------------------------------------------

    async def put(
        self,
        *,
        kind: ArtifactKind | str,
        content: JsonValue,
        tags: Iterable[str] = (),
        parent: str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        media_type: str | None = None,
    ) -> ArtifactRef:
        """Store an artifact (or merge ``tags`` into the identical one already stored); its ref.

        Arguments are validated as :class:`~llama_orch_api.ArtifactCreate` (a bad value raises
        :class:`pydantic.ValidationError`). A missing ``parent`` or content JSON cannot canonicalize
        raises ``OrchError(INVALID_PARAMS)``; content over ``max_bytes``, ``PAYLOAD_TOO_LARGE``.
        """
        request = ArtifactCreate(
            kind=ArtifactKind(kind),
            content=content,
            tags=list(tags),
            parent=parent,
            session_id=session_id,
            task_id=task_id,
            media_type=media_type,
        )
        ref, _ = await self.create(request)
        return ref

    async def create(self, request: ArtifactCreate, *, size_hint: int | None = None) -> tuple[ArtifactRef, bool]:
        """Store ``request``; (ref, True) when new, (ref, False) when it was there already.

        ``size_hint``: the content's approximate size in bytes, when the caller knows it (the
        HTTP body's length); it only decides which thread does the work.
        """
        size = size_hint if size_hint is not None else _rough_size(request.content, self.inline_max_bytes)
        if size > self.inline_max_bytes:
            new = await asyncio.to_thread(self._prepare, request)
            return await self._run(self._index_of().add, new)
        return await self._run(self._prepare_and_add, request)

    def _prepare(self, request: ArtifactCreate) -> NewArtifact:
        encoded = encode(request.kind.value, request.content, request.parent)
        if len(encoded.data) > self.max_bytes:
            raise OrchError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"artifact content too large ({len(encoded.data)} bytes, limit {self.max_bytes})",
            )
        in_blob = len(encoded.data) > self.inline_max_bytes
        if in_blob:
            self._blobs_of().write(encoded.sha256, encoded.data)
        default_type = "text/plain" if encoded.encoding == "text" else "application/json"
        return NewArtifact(
            encoded=encoded,
            kind=request.kind.value,
            parent=request.parent,
            tags=request.tags,
            session_id=request.session_id,
            task_id=request.task_id,
            media_type=request.media_type or default_type,
            in_blob=in_blob,
        )

    def _prepare_and_add(self, request: ArtifactCreate) -> tuple[ArtifactRef, bool]:
        return self._index_of().add(self._prepare(request))

    # -- reading ----------------------------------------------------------------------------------

    async def get(self, artifact_id: str) -> Artifact:
        """The artifact with its content; ``NOT_FOUND`` when there is none with this id.

        ``artifact_id`` is ``sha256:<hex>`` or the bare hex.
        """
        aid = normalize_id(artifact_id)
        loaded = await self._run(self._load, aid)
        if isinstance(loaded, Artifact):
            return loaded
        return await asyncio.to_thread(self._load_blob, loaded)

    def _load(self, artifact_id: str) -> Artifact | Stored:
        stored = self._index_of().get(artifact_id)
        if stored is None:
            raise _not_found(artifact_id)
        if stored.inline is None:
            return stored
        return _with_content(stored, stored.inline)

    def _load_blob(self, stored: Stored) -> Artifact:
        assert stored.blob_sha256 is not None
        return _with_content(stored, self._blobs_of().read(stored.blob_sha256))

    async def ref(self, artifact_id: str) -> ArtifactRef:
        """The artifact's metadata, without reading its content."""
        aid = normalize_id(artifact_id)
        stored = await self._run(self._index_of().get, aid)
        if stored is None:
            raise _not_found(aid)
        return stored.ref

    async def find(
        self,
        *,
        tags: Iterable[str] = (),
        kind: ArtifactKind | str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        parent: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ArtifactList:
        """A page of artifacts matching every filter given (all of ``tags``), newest first.

        Pass the answer's ``next_cursor`` as ``cursor`` for the next page.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise OrchError(ErrorCode.INVALID_PARAMS, f"invalid request: limit: must be between 1 and {MAX_PAGE}")
        before: int | None = None
        if cursor is not None:
            # Any position is a cursor (pages are "older than"); 18 digits keep it a SQLite integer.
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
                raise OrchError(ErrorCode.INVALID_PARAMS, "invalid request: cursor: not a cursor from a previous page")
            before = int(cursor)
        if kind is not None:
            try:
                kind = ArtifactKind(kind).value
            except ValueError:
                allowed = ", ".join(k.value for k in ArtifactKind)
                raise OrchError(ErrorCode.INVALID_PARAMS, f"invalid request: kind: must be one of {allowed}") from None
        refs, next_seq = await self._run(
            functools.partial(
                self._index_of().find,
                tags=list(tags),
                kind=kind,
                session_id=session_id,
                task_id=task_id,
                parent=None if parent is None else normalize_id(parent),
                limit=limit,
                before_seq=before,
            )
        )
        return ArtifactList(artifacts=refs, next_cursor=None if next_seq is None else str(next_seq))

    async def lineage(self, artifact_id: str) -> ArtifactLineage:
        """The chain from the artifact's parent back to its root."""
        aid = normalize_id(artifact_id)
        ancestors = await self._run(self._index_of().lineage, aid)
        if ancestors is None:
            raise _not_found(aid)
        return ArtifactLineage(id=aid, root=ancestors[-1].id if ancestors else aid, ancestors=ancestors)

    # -- plumbing ---------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the database thread."""
        if self._executor is None:
            raise RuntimeError("the artifact store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def _index_of(self) -> Index:
        if self._index is None:
            raise RuntimeError("the artifact store is not open")
        return self._index

    def _blobs_of(self) -> BlobStore:
        if self._blobs is None:
            raise RuntimeError("the artifact store is not open")
        return self._blobs


def _not_found(artifact_id: str) -> OrchError:
    return OrchError(ErrorCode.NOT_FOUND, f"no artifact {artifact_id}")


def _with_content(stored: Stored, data: bytes) -> Artifact:
    # The ref came validated from the index and the content from our own encoding: skip a
    # second validation walk over a possibly large value.
    return Artifact.model_construct(**dict(stored.ref), content=decode(data, stored.encoding))


def _rough_size(value: JsonValue, budget: int) -> int:
    """A cheap lower bound of ``value``'s encoded size, counted only until it passes ``budget``.

    Bounded work on the event loop whatever the value's size: it decides whether encoding the
    value is small enough to do on the database thread, or belongs in a worker thread.
    """
    total = 0
    stack = [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + len(item)
            if total > budget:
                break
            for key, sub in item.items():
                total += len(key) + 3
                stack.append(sub)
                if total > budget:
                    break
        elif isinstance(item, list):
            total += 2 + len(item)
            if total <= budget:
                stack.extend(item)
        else:
            total += 4
    return total
