"""The artifact store on real SQLite and real files under ``tmp_path`` (no HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest
import rfc8785

from llama_orch.artifacts import ArtifactStore, artifact_id, normalize_id
from llama_orch.artifacts._blobs import TMP_PREFIX, BlobStore
from llama_orch.artifacts._index import Index
from llama_orch.errors import OrchError
from llama_orch_api import ArtifactCreate, ArtifactKind, ErrorCode

INLINE_MAX = 1024


def recompute_id(kind: str, content: Any, parent: str | None) -> str:
    """The documented formula, computed here without the store's code."""
    canonical = rfc8785.dumps({"kind": kind, "content": content, "parent": parent})
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    async with ArtifactStore(tmp_path, inline_max_bytes=INLINE_MAX, max_bytes=1 << 20) as s:
        yield s


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "blobs" / "sha256").glob("*/*") if not p.name.startswith(TMP_PREFIX))


# -- ids -------------------------------------------------------------------------------------------


def test_id_of_a_known_vector_is_sha256_of_the_canonical_json_spelled_out() -> None:
    # RFC 8785 by hand: keys sorted, no whitespace, null parent.
    canonical = b'{"content":"# Plan","kind":"plan","parent":null}'
    assert artifact_id("plan", "# Plan", None) == "sha256:" + hashlib.sha256(canonical).hexdigest()


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("plan", "# Plan\n1. Write the contract.\n2. Write the tests."),
        ("trace", {"z": 1, "a": [1, 2.5, None, True], "é": {"nested": "ü"}}),
        ("test-result", [{"name": "t", "ok": False}]),
        ("other", 42),
        ("summary", None),
    ],
)
async def test_id_is_sha256_of_rfc8785_of_kind_content_parent(store: ArtifactStore, kind: str, content: Any) -> None:
    root = await store.put(kind=kind, content=content)
    assert root.id == recompute_id(kind, content, None) == artifact_id(kind, content, None)
    child = await store.put(kind=kind, content=content, parent=root.id)
    assert child.id == recompute_id(kind, content, root.id)
    assert child.id != root.id


async def test_id_ignores_metadata_but_not_kind_or_parent(store: ArtifactStore) -> None:
    a = await store.put(kind="plan", content="x", tags=["a"], session_id="s1", task_id="t1", media_type="text/x-a")
    b = await store.put(kind="plan", content="x", tags=["b"], session_id="s2", task_id="t2", media_type="text/x-b")
    assert a.id == b.id
    c = await store.put(kind="summary", content="x")
    d = await store.put(kind="plan", content="x", parent=c.id)
    assert len({a.id, c.id, d.id}) == 3


# -- dedupe and tags --------------------------------------------------------------------------------


async def test_same_content_stores_once_and_merges_tags(store: ArtifactStore) -> None:
    first, created = await store.create(ArtifactCreate(kind=ArtifactKind.plan, content="p", tags=["b", "a"]))
    assert created
    again, created_again = await store.create(
        ArtifactCreate(kind=ArtifactKind.plan, content="p", tags=["c", "a"], session_id="other")
    )
    assert not created_again
    assert again.id == first.id
    assert again.tags == ["a", "b", "c"]
    # The first post's metadata stay; only tags merge.
    assert again.session_id is None
    assert again.created_at == first.created_at
    page = await store.find()
    assert [r.id for r in page.artifacts] == [first.id]
    assert (await store.get(first.id)).tags == ["a", "b", "c"]


async def test_duplicate_tags_in_one_post_are_one_tag(store: ArtifactStore) -> None:
    ref = await store.put(kind="plan", content="p", tags=["x", "x", "y"])
    assert ref.tags == ["x", "y"]


async def test_media_type_defaults_by_content_and_size_counts_stored_bytes(store: ArtifactStore) -> None:
    text = await store.put(kind="diff", content="héllo")
    assert (text.media_type, text.size_bytes) == ("text/plain", len("héllo".encode()))
    record = await store.put(kind="trace", content={"b": 1, "a": 2})
    assert (record.media_type, record.size_bytes) == ("application/json", len(b'{"a":2,"b":1}'))
    typed = await store.put(kind="diff", content="d", media_type="text/x-diff")
    assert typed.media_type == "text/x-diff"


async def test_json_content_reads_back_in_canonical_form(store: ArtifactStore) -> None:
    ref = await store.put(kind="trace", content={"b": [1.0, "x"], "a": {"d": None, "c": True}})
    artifact = await store.get(ref.id)
    assert artifact.content == {"a": {"c": True, "d": None}, "b": [1, "x"]}
    assert isinstance(artifact.content, dict) and list(artifact.content) == ["a", "b"]


# -- validation -------------------------------------------------------------------------------------


async def test_parent_must_exist(store: ArtifactStore) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(OrchError) as info:
        await store.put(kind="diff", content="d", parent=missing)
    assert info.value.code is ErrorCode.INVALID_PARAMS
    assert "parent" in info.value.message
    assert (await store.find()).artifacts == []


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"kind": "nope", "content": "x"}, id="unknown-kind"),
        pytest.param({"kind": "plan", "content": "x", "parent": "sha256:xyz"}, id="bad-parent-id"),
        pytest.param({"kind": "plan", "content": "x", "tags": ["has space"]}, id="bad-tag"),
        pytest.param({"kind": "plan", "content": {1, 2}}, id="not-json"),
        pytest.param({"kind": "plan", "content": "x", "media_type": "nonsense"}, id="bad-media-type"),
    ],
)
async def test_put_validates_like_the_api(store: ArtifactStore, kwargs: dict[str, Any]) -> None:
    with pytest.raises((pydantic.ValidationError, ValueError)):
        await store.put(**kwargs)


@pytest.mark.parametrize("content", [2**60, {"x": float("nan")}, [float("inf")]])
async def test_content_outside_rfc8785_is_invalid_params(store: ArtifactStore, content: Any) -> None:
    with pytest.raises(OrchError) as info:
        await store.put(kind="trace", content=content)
    assert info.value.code is ErrorCode.INVALID_PARAMS


async def test_content_over_max_bytes_is_payload_too_large(tmp_path: Path) -> None:
    async with ArtifactStore(tmp_path, inline_max_bytes=16, max_bytes=100) as store:
        await store.put(kind="plan", content="x" * 100)
        with pytest.raises(OrchError) as info:
            await store.put(kind="plan", content="x" * 101)
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert len((await store.find()).artifacts) == 1


def test_normalize_id_accepts_bare_and_uppercase_hex_only() -> None:
    hexd = "ab" * 32
    assert normalize_id(hexd) == normalize_id(f"sha256:{hexd}") == normalize_id(hexd.upper()) == f"sha256:{hexd}"
    for bad in ["", "sha256:", "sha256:" + "a" * 63, "md5:" + hexd, hexd + "0", f" sha256:{hexd}"]:
        with pytest.raises(OrchError) as info:
            normalize_id(bad)
        assert info.value.code is ErrorCode.INVALID_PARAMS


async def test_get_and_lineage_of_unknown_id_are_not_found(store: ArtifactStore) -> None:
    for call in (store.get, store.ref, store.lineage):
        with pytest.raises(OrchError) as info:
            await call("sha256:" + "1" * 64)
        assert info.value.code is ErrorCode.NOT_FOUND


# -- lineage and listing ----------------------------------------------------------------------------


async def test_lineage_walks_back_to_the_root_parent_first(store: ArtifactStore) -> None:
    plan = await store.put(kind="plan", content="# Plan")
    diff = await store.put(kind="diff", content="--- a\n+++ b\n", parent=plan.id)
    result = await store.put(kind="test-result", content={"passed": 3}, parent=diff.id)
    lineage = await store.lineage(result.id)
    assert lineage.id == result.id
    assert [a.id for a in lineage.ancestors] == [diff.id, plan.id]
    assert lineage.root == plan.id
    assert [a.id for a in (await store.lineage(diff.id)).ancestors] == [plan.id]
    root = await store.lineage(plan.id)
    assert (root.ancestors, root.root) == ([], plan.id)


async def test_find_filters_by_tag_kind_session_task_and_parent(store: ArtifactStore) -> None:
    plan = await store.put(kind="plan", content="p", tags=["loop:1", "role:planner"], session_id="s1")
    d1 = await store.put(kind="diff", content="d1", parent=plan.id, tags=["loop:1"], session_id="s1", task_id="t1")
    d2 = await store.put(kind="diff", content="d2", parent=plan.id, tags=["loop:2"], session_id="s2", task_id="t2")
    other = await store.put(kind="summary", content="s", tags=["loop:1", "role:planner"])

    async def ids(**filters: Any) -> list[str]:
        return [a.id for a in (await store.find(**filters)).artifacts]

    assert await ids() == [other.id, d2.id, d1.id, plan.id]  # newest first
    assert await ids(tags=["loop:1"]) == [other.id, d1.id, plan.id]
    assert await ids(tags=["loop:1", "role:planner"]) == [other.id, plan.id]  # all of them
    assert await ids(tags=["nope"]) == []
    assert await ids(kind="diff") == [d2.id, d1.id]
    assert await ids(kind=ArtifactKind.plan) == [plan.id]
    assert await ids(session_id="s1") == [d1.id, plan.id]
    assert await ids(task_id="t2") == [d2.id]
    assert await ids(parent=plan.id) == [d2.id, d1.id]
    assert await ids(parent=plan.id.removeprefix("sha256:")) == [d2.id, d1.id]
    assert await ids(kind="diff", tags=["loop:1"], session_id="s1") == [d1.id]


async def test_find_pages_with_a_cursor_without_gaps_or_repeats(store: ArtifactStore) -> None:
    refs = [await store.put(kind="trace", content={"i": i}, tags=["t"]) for i in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.find(tags=["t"], limit=3, cursor=cursor)
        seen += [a.id for a in page.artifacts]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.id for r in reversed(refs)]
    assert pages == 3
    exact = await store.find(limit=7)
    assert len(exact.artifacts) == 7 and exact.next_cursor is None


@pytest.mark.parametrize(
    "filters", [{"limit": 0}, {"limit": 1001}, {"cursor": "abc"}, {"cursor": "-1"}, {"kind": "nope"}]
)
async def test_find_refuses_bad_filters(store: ArtifactStore, filters: dict[str, Any]) -> None:
    with pytest.raises(OrchError) as info:
        await store.find(**filters)
    assert info.value.code is ErrorCode.INVALID_PARAMS


# -- durability -------------------------------------------------------------------------------------


async def test_everything_survives_reopening_the_data_dir(tmp_path: Path) -> None:
    big = "ünïcode " * 1000
    async with ArtifactStore(tmp_path, inline_max_bytes=INLINE_MAX) as first:
        plan = await first.put(kind="plan", content="# Plan", tags=["keep"], session_id="s")
        diff = await first.put(kind="diff", content=big, parent=plan.id, task_id="t")
    async with ArtifactStore(tmp_path, inline_max_bytes=INLINE_MAX) as second:
        got_plan = await second.get(plan.id)
        assert (got_plan.content, got_plan.tags, got_plan.session_id) == ("# Plan", ["keep"], "s")
        assert (await second.get(diff.id)).content == big
        assert [a.id for a in (await second.lineage(diff.id)).ancestors] == [plan.id]
        again = await second.put(kind="plan", content="# Plan", tags=["more"])
        assert again.id == plan.id and again.tags == ["keep", "more"]


async def test_index_uses_wal_mode(store: ArtifactStore) -> None:
    with sqlite3.connect(store.root / "artifacts.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "artifacts.sqlite3") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        await ArtifactStore(tmp_path).open()


async def test_twenty_concurrent_writers_on_one_loop_lose_nothing(store: ArtifactStore) -> None:
    plan = await store.put(kind="plan", content="shared parent")
    distinct = [store.put(kind="diff", content=f"d{i}", parent=plan.id, tags=[f"w{i}"]) for i in range(20)]
    # Twenty writers of the same content, each adding its own tag: one artifact, twenty tags.
    same = [store.put(kind="summary", content="same", tags=[f"s{i}"]) for i in range(20)]
    big = [store.put(kind="trace", content="B" * (INLINE_MAX * 4) + str(i)) for i in range(5)]
    refs = await asyncio.gather(*distinct, *same, *big)
    assert len({r.id for r in refs[:20]}) == 20
    assert len({r.id for r in refs[20:40]}) == 1
    summary = await store.get(refs[20].id)
    assert summary.tags == sorted(f"s{i}" for i in range(20))
    children = await store.find(parent=plan.id, limit=100)
    assert {a.id for a in children.artifacts} == {r.id for r in refs[:20]}
    for i, ref in enumerate(refs[40:]):
        assert (await store.get(ref.id)).content == "B" * (INLINE_MAX * 4) + str(i)


def test_twenty_threads_each_with_its_own_store_lose_nothing(tmp_path: Path) -> None:
    """Separate connections (as separate processes would have) serialize on SQLite's lock."""
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    async def write(i: int) -> None:
        async with ArtifactStore(tmp_path, inline_max_bytes=INLINE_MAX) as store:
            barrier.wait(timeout=30)
            for j in range(5):
                await store.put(kind="trace", content={"thread": i, "n": j}, tags=["threads"])
                await store.put(kind="summary", content="everyone", tags=[f"t{i}"])
            await store.put(kind="diff", content="D" * (INLINE_MAX * 3) + str(i))

    def run(i: int) -> None:
        try:
            asyncio.run(write(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []

    async def check() -> None:
        async with ArtifactStore(tmp_path, inline_max_bytes=INLINE_MAX) as store:
            traces = await store.find(tags=["threads"], limit=1000)
            assert len(traces.artifacts) == 100
            ids = {a.id for a in traces.artifacts}
            assert ids == {artifact_id("trace", {"thread": i, "n": j}, None) for i in range(20) for j in range(5)}
            everyone = await store.ref(artifact_id("summary", "everyone", None))
            assert everyone.tags == sorted(f"t{i}" for i in range(20))
            for i in range(20):
                assert (await store.get(artifact_id("diff", "D" * (INLINE_MAX * 3) + str(i), None))).size_bytes > 0

    asyncio.run(check())


# -- blobs ------------------------------------------------------------------------------------------


async def test_large_content_goes_to_a_blob_and_reads_back_byte_identical(store: ArtifactStore) -> None:
    text = "".join(chr(0x20 + (i * 7919) % 0x2000) for i in range(200_000))  # ~0.5 MB, multi-byte
    ref = await store.put(kind="diff", content=text)
    data = text.encode("utf-8")
    assert ref.size_bytes == len(data)
    sha = hashlib.sha256(data).hexdigest()
    path = store.root / "blobs" / "sha256" / sha[:2] / sha[2:]
    assert path.read_bytes() == data
    with sqlite3.connect(store.root / "artifacts.sqlite3") as db:
        inline, blob = db.execute("SELECT inline, blob_sha256 FROM artifacts WHERE id = ?", (ref.id,)).fetchone()
    assert (inline, blob) == (None, sha)
    assert (await store.get(ref.id)).content == text

    small = await store.put(kind="plan", content="small")
    assert blob_files(store.root) == [path]  # small content stays in the index
    assert (await store.get(small.id)).content == "small"


async def test_large_json_content_is_a_blob_of_its_canonical_json(store: ArtifactStore) -> None:
    content = {f"k{i:05d}": {"v": i, "s": "x" * 10} for i in range(2000)}
    ref = await store.put(kind="trace", content=content)
    canonical = rfc8785.dumps(content)
    sha = hashlib.sha256(canonical).hexdigest()
    assert (store.root / "blobs" / "sha256" / sha[:2] / sha[2:]).read_bytes() == canonical
    assert (await store.get(ref.id)).content == content


async def test_equal_contents_of_different_artifacts_share_one_blob(store: ArtifactStore) -> None:
    text = "shared " * 1000
    a = await store.put(kind="diff", content=text)
    b = await store.put(kind="summary", content=text, parent=a.id)
    assert a.id != b.id
    assert len(blob_files(store.root)) == 1
    assert (await store.get(b.id)).content == text


async def test_a_leftover_temp_file_does_not_corrupt_anything(tmp_path: Path) -> None:
    text = "L" * (INLINE_MAX * 8)
    sha = hashlib.sha256(text.encode()).hexdigest()
    folder = tmp_path / "blobs" / "sha256" / sha[:2]
    folder.mkdir(parents=True)
    # What a writer killed mid-write leaves: a partial temp file next to the final name.
    young = folder / f"{TMP_PREFIX}crashed-now"
    young.write_bytes(text.encode()[:100])
    old = folder / f"{TMP_PREFIX}crashed-long-ago"
    old.write_bytes(b"partial")
    long_ago = time.time() - 7200
    os.utime(old, (long_ago, long_ago))
    async with ArtifactStore(tmp_path, inline_max_bytes=INLINE_MAX) as store:
        assert not old.exists()  # swept at open
        assert young.exists()  # may belong to a live writer: left alone
        ref = await store.put(kind="diff", content=text)
        assert (await store.get(ref.id)).content == text
        assert (folder / sha[2:]).read_bytes() == text.encode()


async def test_a_crash_mid_blob_write_leaves_no_blob_and_no_row(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "C" * (INLINE_MAX * 8)
    sha = hashlib.sha256(text.encode()).hexdigest()
    final = store.root / "blobs" / "sha256" / sha[:2] / sha[2:]

    def crash(fd: int) -> None:
        raise OSError("disk gone")

    # The bytes are written, then the writer dies before fsync and before any cleanup.
    monkeypatch.setattr(os, "fsync", crash)
    monkeypatch.setattr(os, "unlink", lambda path: None)
    with pytest.raises(OSError, match="disk gone"):
        await store.put(kind="diff", content=text)
    monkeypatch.undo()
    assert not final.exists()  # never a half-written blob under its final name
    assert [p.name.startswith(TMP_PREFIX) for p in final.parent.iterdir()] == [True]
    assert (await store.find()).artifacts == []
    ref = await store.put(kind="diff", content=text)
    assert (await store.get(ref.id)).content == text
    assert final.read_bytes() == text.encode()


async def test_a_damaged_blob_is_an_internal_error_not_wrong_content(store: ArtifactStore) -> None:
    text = "D" * (INLINE_MAX * 2)
    ref = await store.put(kind="diff", content=text)
    (path,) = blob_files(store.root)
    path.write_bytes(b"E" * len(text))
    with pytest.raises(OrchError) as info:
        await store.get(ref.id)
    assert info.value.code is ErrorCode.INTERNAL
    # A blob of the wrong size (say, truncated) is rewritten by the next post of that content.
    path.write_bytes(b"short")
    await store.put(kind="diff", content=text)
    assert (await store.get(ref.id)).content == text


def test_blob_write_is_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = b"hello"
    sha = hashlib.sha256(data).hexdigest()
    blobs.write(sha, data)
    blobs.write(sha, data)
    assert blobs.read(sha) == data
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [sha[2:]]


# -- threads and lifecycle --------------------------------------------------------------------------


async def test_sqlite_and_large_encoding_run_off_the_event_loop(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    seen: dict[str, str] = {}
    real_add, real_write = Index.add, BlobStore.write

    def add(self: Index, new: Any) -> Any:
        seen["add"] = threading.current_thread().name
        return real_add(self, new)

    def write(self: BlobStore, sha: str, data: bytes) -> None:
        seen["blob"] = threading.current_thread().name
        real_write(self, sha, data)

    monkeypatch.setattr(Index, "add", add)
    monkeypatch.setattr(BlobStore, "write", write)
    await store.put(kind="plan", content="small")
    assert seen["add"].startswith("llorch-artifacts-db")
    await store.put(kind="diff", content="x" * (INLINE_MAX * 4))
    assert seen["blob"] != loop_thread.name
    assert not seen["blob"].startswith("llorch-artifacts-db")  # large work does not hold up small writes


async def test_without_data_dir_the_store_is_temporary_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llama_orch.artifacts")
    store = await ArtifactStore(None).open()
    root = store.root
    assert store.ephemeral and root.is_dir()
    assert any("deleted at shutdown" in r.getMessage() and str(root) in r.getMessage() for r in caplog.records)
    ref = await store.put(kind="plan", content="gone soon")
    assert (await store.get(ref.id)).content == "gone soon"
    await store.aclose()
    assert not root.exists()
    await store.aclose()  # idempotent


async def test_using_a_closed_store_is_a_misuse_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError, match="not open"):
        await store.put(kind="plan", content="x")
    await store.open()
    with pytest.raises(RuntimeError, match="already open"):
        await store.open()
    await store.aclose()
    with pytest.raises(RuntimeError, match="not open"):
        await store.find()
