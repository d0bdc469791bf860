"""The catalog on real files and real SQLite: digests, Ed25519 signatures, policy, admission, persistence."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from llama_orch.catalog import (
    CATALOG_FILE,
    DEFAULT_POLICY,
    Catalog,
    VerificationStopped,
    overall_digest,
    sha256_file,
)
from llama_orch.errors import AdmissionError, ConfigError, OrchError
from llama_orch_api import (
    CatalogFileSpec,
    CatalogModelCreate,
    ErrorCode,
    ModelState,
    ModelStateRequest,
    TrustMode,
    VerificationStatus,
)

CONTENT = b"GGUF" + bytes(range(256)) * 64


def write_file(directory: Path, name: str = "model.gguf", content: bytes = CONTENT) -> CatalogFileSpec:
    path = directory / name
    path.write_bytes(content)
    return CatalogFileSpec(path=str(path), sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content))


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(key: Ed25519PrivateKey, digest: str) -> str:
    return base64.b64encode(key.sign(digest.encode())).decode()


def make_spec(
    files: list[CatalogFileSpec],
    *,
    id: str = "m1",
    model_ref: str = "hf:org/repo/model.gguf",
    source: str = "hf:org/repo/model.gguf",
    mode: TrustMode = TrustMode.permissive,
    require_signature: bool = False,
    **extra: Any,
) -> CatalogModelCreate:
    policy = {"mode": mode, "require_signature": require_signature, **extra.pop("policy", {})}
    return CatalogModelCreate.model_validate(
        {
            "id": id,
            "model_ref": model_ref,
            "source": source,
            "files": [f.model_dump() for f in files],
            "trust_policy": policy,
            **extra,
        }
    )


@pytest.fixture
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def catalog(tmp_path: Path, signer: Ed25519PrivateKey) -> Iterator[Catalog]:
    with Catalog.in_data_dir(tmp_path / "data", trusted_keys={"release": public_b64(signer)}) as opened:
        yield opened


def refusal(catalog: Catalog, model_ref: str) -> ErrorCode:
    with pytest.raises(AdmissionError) as info:
        catalog.check_admissible(model_ref)
    return info.value.code


# -- digests ----------------------------------------------------------------------------------------


def test_sha256_file_streams_files_larger_than_a_chunk(tmp_path: Path) -> None:
    content = os.urandom((1 << 20) * 2 + 12345)
    (tmp_path / "big").write_bytes(content)
    assert sha256_file(tmp_path / "big") == (hashlib.sha256(content).hexdigest(), len(content))


def test_sha256_file_stops_between_chunks_when_asked(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * ((1 << 20) * 3))
    asked: list[int] = []

    def stop_at_the_second_chunk() -> bool:
        asked.append(1)
        return len(asked) == 2

    with pytest.raises(VerificationStopped, match=r"after 1048576 bytes"):
        sha256_file(tmp_path / "big", stop_at_the_second_chunk)
    assert len(asked) == 2


def test_overall_digest_of_one_file_is_its_digest_and_of_several_hashes_their_hex_lines() -> None:
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    assert overall_digest([a]) == f"sha256:{a}"
    assert overall_digest([a, b]) == "sha256:" + hashlib.sha256(f"{a}\n{b}\n".encode()).hexdigest()
    assert overall_digest([a, b]) != overall_digest([b, a])
    with pytest.raises(ValueError, match="at least one file"):
        overall_digest([])


async def test_good_digest_verifies_and_is_admissible(catalog: Catalog, tmp_path: Path) -> None:
    entry = catalog.create(make_spec([write_file(tmp_path)]))
    assert entry.verification.status is VerificationStatus.unverified
    assert entry.digest == f"sha256:{hashlib.sha256(CONTENT).hexdigest()}"

    result = await catalog.verify("m1")
    assert (result.status, result.errors, result.warnings) == (VerificationStatus.verified, [], [])
    assert result.checked_at is not None and result.checked_at.tzinfo is not None
    assert catalog.get("m1").verification == result
    catalog.check_admissible("hf:org/repo/model.gguf")


def test_bad_digest_fails_and_admission_refuses_untrusted_artifact(catalog: Catalog, tmp_path: Path) -> None:
    good = write_file(tmp_path)
    tampered = good.model_copy(update={"sha256": hashlib.sha256(b"something else").hexdigest()})
    catalog.create(make_spec([tampered]))
    catalog.check_admissible("hf:org/repo/model.gguf")  # permissive and unverified: still admissible

    result = catalog.verify_blocking("m1")
    assert result.status is VerificationStatus.failed
    assert len(result.errors) == 1 and "digest mismatch" in result.errors[0]
    assert good.sha256 in result.errors[0]  # names what the file really hashes to
    with pytest.raises(AdmissionError) as info:
        catalog.check_admissible("hf:org/repo/model.gguf")
    assert info.value.code is ErrorCode.UNTRUSTED_ARTIFACT and info.value.status == 403
    assert "digest mismatch" in info.value.message


def test_content_changed_after_registration_fails(catalog: Catalog, tmp_path: Path) -> None:
    spec = write_file(tmp_path)
    catalog.create(make_spec([spec]))
    assert catalog.verify_blocking("m1").status is VerificationStatus.verified
    # Same size, one byte flipped: only the real hash can tell.
    Path(spec.path).write_bytes(b"X" + CONTENT[1:])
    result = catalog.verify_blocking("m1")
    assert result.status is VerificationStatus.failed and "digest mismatch" in result.errors[0]
    assert refusal(catalog, "hf:org/repo/model.gguf") is ErrorCode.UNTRUSTED_ARTIFACT


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(lambda p: p.unlink(), "file is missing", id="missing"),
        pytest.param(lambda p: p.write_bytes(CONTENT + b"x"), "bytes on disk, expected", id="size"),
    ],
)
def test_missing_or_unreadable_file_fails(catalog: Catalog, tmp_path: Path, damage: Any, message: str) -> None:
    spec = write_file(tmp_path)
    catalog.create(make_spec([spec]))
    damage(Path(spec.path))
    result = catalog.verify_blocking("m1")
    assert result.status is VerificationStatus.failed
    assert any(message in e for e in result.errors), result.errors
    assert refusal(catalog, "hf:org/repo/model.gguf") is ErrorCode.UNTRUSTED_ARTIFACT


def test_a_path_that_cannot_be_read_fails(catalog: Catalog, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    size = folder.stat().st_size  # so that the size check passes and reading is what fails
    catalog.create(make_spec([CatalogFileSpec(path=str(folder), sha256="0" * 64, size_bytes=size)]))
    result = catalog.verify_blocking("m1")
    assert result.status is VerificationStatus.failed
    assert result.errors == [f"{folder}: cannot be read (Is a directory)"]


def test_every_file_of_a_sharded_model_is_checked(catalog: Catalog, tmp_path: Path) -> None:
    first = write_file(tmp_path, "part-1.gguf", b"one")
    second = write_file(tmp_path, "part-2.gguf", b"two")
    entry = catalog.create(make_spec([first, second]))
    assert entry.digest == overall_digest([first.sha256, second.sha256])
    assert catalog.verify_blocking("m1").status is VerificationStatus.verified
    Path(second.path).unlink()
    result = catalog.verify_blocking("m1")
    assert result.errors == [f"{second.path}: file is missing"]


# -- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(TrustMode))
def test_missing_signature_warns_when_permissive_and_fails_when_strict(
    catalog: Catalog, tmp_path: Path, mode: TrustMode
) -> None:
    catalog.create(make_spec([write_file(tmp_path)], mode=mode, require_signature=True))
    result = catalog.verify_blocking("m1")
    problem = "no signature (the policy requires one)"
    if mode is TrustMode.permissive:
        assert (result.status, result.warnings, result.errors) == (VerificationStatus.verified, [problem], [])
        catalog.check_admissible("hf:org/repo/model.gguf")
    else:
        assert (result.status, result.warnings, result.errors) == (VerificationStatus.failed, [], [problem])
        assert refusal(catalog, "hf:org/repo/model.gguf") is ErrorCode.UNTRUSTED_ARTIFACT


def test_no_signature_is_fine_when_the_policy_does_not_ask_for_one(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)], mode=TrustMode.strict, require_signature=False))
    result = catalog.verify_blocking("m1")
    assert (result.status, result.warnings, result.errors) == (VerificationStatus.verified, [], [])


def test_real_ed25519_signature_verifies_in_strict_mode(
    catalog: Catalog, tmp_path: Path, signer: Ed25519PrivateKey
) -> None:
    file = write_file(tmp_path)
    signature = sign(signer, f"sha256:{file.sha256}")
    catalog.create(
        make_spec(
            [file],
            mode=TrustMode.strict,
            require_signature=True,
            signatures=[{"key_id": "release", "signature": signature}],
        )
    )
    result = catalog.verify_blocking("m1")
    assert (result.status, result.warnings, result.errors) == (VerificationStatus.verified, [], [])
    catalog.check_admissible("hf:org/repo/model.gguf")


def _flip_one_bit(signature_b64: str) -> str:
    raw = bytearray(base64.b64decode(signature_b64))
    raw[10] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("mode", list(TrustMode))
@pytest.mark.parametrize("forgery", ["tampered", "other-key", "other-digest", "truncated"])
def test_invalid_signature_always_fails(
    catalog: Catalog, tmp_path: Path, signer: Ed25519PrivateKey, mode: TrustMode, forgery: str
) -> None:
    file = write_file(tmp_path)
    digest = f"sha256:{file.sha256}"
    signature = {
        "tampered": _flip_one_bit(sign(signer, digest)),
        "other-key": sign(Ed25519PrivateKey.generate(), digest),
        "other-digest": sign(signer, f"sha256:{hashlib.sha256(b'other').hexdigest()}"),
        "truncated": sign(signer, digest)[:40],
    }[forgery]
    catalog.create(
        make_spec(
            [file], mode=mode, require_signature=False, signatures=[{"key_id": "release", "signature": signature}]
        )
    )
    result = catalog.verify_blocking("m1")
    assert result.status is VerificationStatus.failed
    assert result.errors == [f"signature by key 'release' is invalid for {digest}"]
    assert refusal(catalog, "hf:org/repo/model.gguf") is ErrorCode.UNTRUSTED_ARTIFACT


@pytest.mark.parametrize("mode", list(TrustMode))
def test_signature_by_an_untrusted_key_cannot_count(catalog: Catalog, tmp_path: Path, mode: TrustMode) -> None:
    file = write_file(tmp_path)
    stranger = sign(Ed25519PrivateKey.generate(), f"sha256:{file.sha256}")
    catalog.create(
        make_spec([file], mode=mode, require_signature=True, signatures=[{"key_id": "stranger", "signature": stranger}])
    )
    result = catalog.verify_blocking("m1")
    expected = [
        "signature by key 'stranger' cannot be checked: not a trusted key",
        "no valid signature by a trusted key",
    ]
    if mode is TrustMode.permissive:
        assert (result.status, result.warnings, result.errors) == (VerificationStatus.verified, expected, [])
    else:
        assert (result.status, result.warnings, result.errors) == (VerificationStatus.failed, [], expected)


def test_signature_over_a_sharded_models_overall_digest(
    catalog: Catalog, tmp_path: Path, signer: Ed25519PrivateKey
) -> None:
    files = [write_file(tmp_path, "a.gguf", b"a"), write_file(tmp_path, "b.gguf", b"b")]
    digest = overall_digest([f.sha256 for f in files])
    catalog.create(
        make_spec(
            files,
            mode=TrustMode.strict,
            require_signature=True,
            signatures=[{"key_id": "release", "signature": sign(signer, digest)}],
        )
    )
    assert catalog.verify_blocking("m1").status is VerificationStatus.verified


@pytest.mark.parametrize("key", ["not base64!", base64.b64encode(b"too short").decode()])
def test_a_trusted_key_that_is_not_an_ed25519_public_key_is_a_config_error(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="catalog trusted key 'bad'"):
        Catalog(tmp_path / CATALOG_FILE, trusted_keys={"bad": key})


# -- source and SBOM policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(TrustMode))
def test_source_outside_allowed_sources_fails(catalog: Catalog, tmp_path: Path, mode: TrustMode) -> None:
    catalog.create(
        make_spec(
            [write_file(tmp_path)],
            mode=mode,
            source="https://mirror.example/model.gguf",
            policy={"allowed_sources": ["hf:org/", "file:/models/"]},
        )
    )
    result = catalog.verify_blocking("m1")
    assert result.status is VerificationStatus.failed
    assert result.errors == [
        "source 'https://mirror.example/model.gguf' is not allowed by the trust policy (['hf:org/', 'file:/models/'])"
    ]


def test_source_inside_allowed_sources_passes(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)], policy={"allowed_sources": ["hf:org/"]}))
    assert catalog.verify_blocking("m1").status is VerificationStatus.verified


@pytest.mark.parametrize("mode", list(TrustMode))
@pytest.mark.parametrize("sbom", [None, "file:/nonexistent/sbom.spdx.json"])
def test_missing_sbom_when_required(catalog: Catalog, tmp_path: Path, mode: TrustMode, sbom: str | None) -> None:
    catalog.create(make_spec([write_file(tmp_path)], mode=mode, sbom=sbom, policy={"require_sbom": True}))
    result = catalog.verify_blocking("m1")
    problems = result.warnings if mode is TrustMode.permissive else result.errors
    assert len(problems) == 1 and ("no SBOM" in problems[0] or "is missing" in problems[0])
    expected = VerificationStatus.verified if mode is TrustMode.permissive else VerificationStatus.failed
    assert result.status is expected


def test_present_sbom_file_satisfies_a_strict_policy(catalog: Catalog, tmp_path: Path) -> None:
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text("{}")
    catalog.create(
        make_spec([write_file(tmp_path)], mode=TrustMode.strict, sbom=f"file:{sbom}", policy={"require_sbom": True})
    )
    result = catalog.verify_blocking("m1")
    assert (result.status, result.warnings, result.errors) == (VerificationStatus.verified, [], [])


# -- admission -------------------------------------------------------------------------------------------


def test_a_model_ref_not_in_the_catalog_is_admissible(catalog: Catalog) -> None:
    catalog.check_admissible("mock:tiny")
    assert catalog.drain_deadline("mock:tiny") is None
    assert catalog.find("mock:tiny") is None


def test_strict_policy_refuses_until_verified_permissive_admits(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)], id="strict", model_ref="ref:strict", mode=TrustMode.strict))
    catalog.create(make_spec([write_file(tmp_path)], id="loose", model_ref="ref:loose", mode=TrustMode.permissive))
    with pytest.raises(AdmissionError, match="never verified") as info:
        catalog.check_admissible("ref:strict")
    assert info.value.code is ErrorCode.UNTRUSTED_ARTIFACT and info.value.details == {"catalog_id": "strict"}
    catalog.check_admissible("ref:loose")
    catalog.verify_blocking("strict")
    catalog.check_admissible("ref:strict")


def test_retire_refuses_with_model_deprecated_and_sets_the_drain_deadline(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)]))
    catalog.verify_blocking("m1")
    before = time.time()
    entry = catalog.set_state("m1", ModelStateRequest(state=ModelState.Retired, drain_deadline_ms=60_000, reason="old"))
    after = time.time()
    assert (entry.state, entry.state_reason) == (ModelState.Retired, "old")
    assert entry.retired_at is not None and entry.drain_deadline_at is not None
    with pytest.raises(AdmissionError) as info:
        catalog.check_admissible("hf:org/repo/model.gguf")
    assert info.value.code is ErrorCode.MODEL_DEPRECATED and info.value.status == 410
    deadline = catalog.drain_deadline("hf:org/repo/model.gguf")
    assert deadline is not None
    # The deadline is "60 s from the moment of the call", bracketed by clock reads around it.
    assert before + 60 - 0.001 <= deadline <= after + 60 + 0.001
    assert deadline == entry.drain_deadline_at.timestamp()

    active = catalog.set_state("m1", ModelStateRequest(state=ModelState.Active))
    assert (active.state, active.retired_at, active.drain_deadline_at) == (ModelState.Active, None, None)
    catalog.check_admissible("hf:org/repo/model.gguf")
    assert catalog.drain_deadline("hf:org/repo/model.gguf") is None


def test_retire_without_a_deadline_lets_running_work_finish(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)]))
    catalog.set_state("m1", ModelStateRequest(state=ModelState.Retired))
    assert refusal(catalog, "hf:org/repo/model.gguf") is ErrorCode.MODEL_DEPRECATED
    assert catalog.drain_deadline("hf:org/repo/model.gguf") is None


def test_deleting_an_entry_makes_its_model_uncatalogued(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)]))
    catalog.set_state("m1", ModelStateRequest(state=ModelState.Retired))
    catalog.delete("m1")
    catalog.check_admissible("hf:org/repo/model.gguf")
    with pytest.raises(OrchError) as info:
        catalog.get("m1")
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(OrchError) as info:
        catalog.delete("m1")
    assert info.value.code is ErrorCode.NOT_FOUND


# -- entries --------------------------------------------------------------------------------------------


def test_duplicate_id_or_model_ref_is_a_conflict(catalog: Catalog, tmp_path: Path) -> None:
    file = write_file(tmp_path)
    catalog.create(make_spec([file]))
    for spec in (make_spec([file], model_ref="other"), make_spec([file], id="m2")):
        with pytest.raises(OrchError) as info:
            catalog.create(spec)
        assert info.value.code is ErrorCode.CONFLICT
    assert [e.id for e in catalog.list_models()] == ["m1"]


def test_entries_record_what_was_asked_with_the_default_policy_filled_in(catalog: Catalog, tmp_path: Path) -> None:
    spec = CatalogModelCreate.model_validate(
        {
            "id": "m1",
            "model_ref": "ref",
            "source": "file:/models/m.gguf",
            "files": [write_file(tmp_path).model_dump()],
            "tags": ["gemma", "q4", "gemma"],
            "manifests": {"gguf": {"arch": "gemma3", "ctx": 8192}},
            "sbom": "https://example.org/sbom.json",
            "trust_policy": {"require_sbom": True},
        }
    )
    entry = catalog.create(spec)
    assert entry.tags == ["gemma", "q4"]
    assert entry.manifests == {"gguf": {"arch": "gemma3", "ctx": 8192}}
    assert entry.trust_policy == DEFAULT_POLICY.model_copy(update={"require_sbom": True})
    assert entry.created_at == entry.updated_at and entry.created_at.tzinfo is UTC


def test_list_filters_by_state_and_returns_copies(catalog: Catalog, tmp_path: Path) -> None:
    file = write_file(tmp_path)
    catalog.create(make_spec([file], id="b", model_ref="rb"))
    catalog.create(make_spec([file], id="a", model_ref="ra"))
    catalog.set_state("b", ModelStateRequest(state=ModelState.Retired))
    assert [e.id for e in catalog.list_models()] == ["a", "b"]
    assert [e.id for e in catalog.list_models(ModelState.Retired)] == ["b"]
    assert [e.id for e in catalog.list_models(ModelState.Active)] == ["a"]
    catalog.list_models()[0].tags.append("mutated")
    catalog.get("a").files.clear()
    assert catalog.get("a").tags == [] and len(catalog.get("a").files) == 1


def test_writes_before_open_are_a_misuse(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / CATALOG_FILE)
    with pytest.raises(RuntimeError, match="not open"):
        catalog.create(make_spec([write_file(tmp_path)]))


# -- persistence ------------------------------------------------------------------------------------------


async def test_everything_survives_a_reopen(tmp_path: Path, signer: Ed25519PrivateKey) -> None:
    keys = {"release": public_b64(signer)}
    file = write_file(tmp_path)
    with Catalog.in_data_dir(tmp_path / "data", trusted_keys=keys) as first:
        first.create(make_spec([file], id="bad", model_ref="ref:bad", policy={"allowed_sources": []}))
        first.create(make_spec([file], id="old", model_ref="ref:old"))
        first.create(make_spec([file], id="strict", model_ref="ref:strict", mode=TrustMode.strict))
        await first.verify("bad")
        first.set_state("old", ModelStateRequest(state=ModelState.Retired, drain_deadline_ms=5000))
        before = first.list_models()

    assert (tmp_path / "data" / CATALOG_FILE).is_file()
    with Catalog.in_data_dir(tmp_path / "data", trusted_keys=keys) as second:
        assert second.list_models() == before
        assert refusal(second, "ref:bad") is ErrorCode.UNTRUSTED_ARTIFACT
        assert refusal(second, "ref:old") is ErrorCode.MODEL_DEPRECATED
        assert refusal(second, "ref:strict") is ErrorCode.UNTRUSTED_ARTIFACT
        assert second.drain_deadline("ref:old") == before[1].drain_deadline_at.timestamp()  # type: ignore[union-attr]
        second.delete("bad")

    with Catalog.in_data_dir(tmp_path / "data") as third:
        assert [e.id for e in third.list_models()] == ["old", "strict"]
        third.check_admissible("ref:bad")


def test_the_file_is_sqlite_in_wal_mode(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create(make_spec([write_file(tmp_path)]))
    with sqlite3.connect(tmp_path / "data" / CATALOG_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT id, model_ref FROM catalog_models").fetchall() == [("m1", "hf:org/repo/model.gguf")]
    conn.close()


def test_a_catalog_written_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / CATALOG_FILE
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        Catalog(path).open()


def test_without_a_data_dir_the_catalog_is_ephemeral_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="llama_orch.catalog"), Catalog.in_data_dir(None) as catalog:
        catalog.create(make_spec([write_file(tmp_path)]))
        assert catalog.path is None
    assert any("in memory only" in r.getMessage() for r in caplog.records)
    with Catalog.in_data_dir(None) as fresh:
        assert fresh.list_models() == []


# -- concurrency ------------------------------------------------------------------------------------------


class FifoModel:
    """A model whose one file is an empty FIFO: hashing it blocks until the test opens the writer.

    The writer is opened by the test's coroutine, on the event loop. A watchdog thread releases the
    reader after WATCHDOG_S should the loop itself be stuck in the read (hashing on the loop), so
    that such a bug fails the test with a message instead of hanging the whole run.
    """

    WATCHDOG_S = 20.0

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "model.fifo"
        os.mkfifo(self.path)
        empty = hashlib.sha256(b"").hexdigest()
        self.spec = make_spec([CatalogFileSpec(path=str(self.path), sha256=empty, size_bytes=0)])
        self.rescued = threading.Event()
        self._watchdog = threading.Timer(self.WATCHDOG_S, self._rescue)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _rescue(self) -> None:
        self.rescued.set()
        with contextlib.suppress(OSError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))

    async def open_writer(self) -> int:
        """Open the writer once the verifier has opened the FIFO (so it holds its snapshot)."""
        while not self.rescued.is_set():
            try:
                return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            await asyncio.sleep(0.005)
        raise AssertionError("verification blocked the event loop until the watchdog released it")

    def cancel(self) -> None:
        self._watchdog.cancel()


@pytest.fixture
def fifo_model(tmp_path: Path) -> Iterator[FifoModel]:
    model = FifoModel(tmp_path)
    yield model
    model.cancel()


async def test_verify_hashes_in_a_worker_thread_not_on_the_event_loop(catalog: Catalog, fifo_model: FifoModel) -> None:
    catalog.create(fifo_model.spec)
    verifying = asyncio.create_task(catalog.verify("m1"))
    os.close(await fifo_model.open_writer())
    assert (await verifying).status is VerificationStatus.verified


async def test_an_entry_replaced_while_being_verified_keeps_no_stale_result(
    catalog: Catalog, fifo_model: FifoModel
) -> None:
    catalog.create(fifo_model.spec)
    verifying = asyncio.create_task(catalog.verify("m1"))
    writer = await fifo_model.open_writer()  # the verifier holds its snapshot and is reading now
    catalog.delete("m1")
    catalog.create(fifo_model.spec.model_copy(update={"tags": ["replaced"]}))
    os.close(writer)
    with pytest.raises(OrchError) as info:
        await verifying
    assert info.value.code is ErrorCode.CONFLICT
    assert catalog.get("m1").verification.status is VerificationStatus.unverified


async def test_an_entry_deleted_while_being_verified_is_not_resurrected(
    catalog: Catalog, fifo_model: FifoModel
) -> None:
    catalog.create(fifo_model.spec)
    verifying = asyncio.create_task(catalog.verify("m1"))
    writer = await fifo_model.open_writer()
    catalog.delete("m1")
    os.close(writer)
    with pytest.raises(OrchError) as info:
        await verifying
    assert info.value.code is ErrorCode.NOT_FOUND
    assert catalog.list_models() == []


async def test_closing_the_catalog_stops_a_verification_in_progress(catalog: Catalog, fifo_model: FifoModel) -> None:
    catalog.create(fifo_model.spec)
    verifying = asyncio.create_task(catalog.verify("m1"))
    writer = await fifo_model.open_writer()
    catalog.close()
    # One byte, then end of file: the verifier reads a chunk, sees the catalog closing and stops
    # (were it to go on, it would fail later and differently: a mismatch, then a closed store).
    os.write(writer, b"x")
    os.close(writer)
    with pytest.raises(OrchError, match="the catalog is closing") as info:
        await verifying
    assert info.value.retriable
    assert catalog.get("m1").verification.status is VerificationStatus.unverified
