"""Trust verification: the real digests of the cached files, Ed25519 signatures, source and SBOM.

Blocking: it reads whole model files (gigabytes), so the catalog runs it in a worker thread.
Everything here is a pure function of an entry, the trusted keys and the disk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from llama_orch_api import CatalogModel, TrustMode, VerificationStatus, VerifyResult

CHUNK_BYTES = 1 << 20
"""Read size while hashing: large enough to keep syscalls rare, small enough to stay out of RSS."""


class VerificationStopped(Exception):
    """Hashing was stopped midway (the catalog is closing); there is no result."""


def sha256_file(path: str | os.PathLike[str], should_stop: Callable[[], bool] | None = None) -> tuple[str, int]:
    """Hex SHA-256 and size of the file at ``path``, read in chunks (never whole into memory).

    ``should_stop`` is asked after every chunk, so that closing the catalog does not wait for
    the rest of a 70 GB model to be hashed; it raises :class:`VerificationStopped`.
    """
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb") as file:
        while n := file.readinto(buffer):
            if should_stop is not None and should_stop():
                raise VerificationStopped(f"stopped hashing {os.fspath(path)} after {size} bytes")
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def overall_digest(file_digests: Sequence[str]) -> str:
    """The entry's digest, ``sha256:<hex>``, from its files' hex digests (in order).

    One file: that file's digest, so ``sha256sum model.gguf`` gives it. Several (sharded models):
    the SHA-256 of their hex digests, each followed by a newline. Signatures are made over this
    string's UTF-8 bytes, so a signer needs nothing but the files to reproduce it.
    """
    if not file_digests:
        raise ValueError("a model has at least one file")
    if len(file_digests) == 1:
        return f"sha256:{file_digests[0]}"
    joined = "".join(f"{d}\n" for d in file_digests).encode()
    return f"sha256:{hashlib.sha256(joined).hexdigest()}"


def load_public_key(key_b64: str) -> Ed25519PublicKey:
    """An Ed25519 public key from the base64 of its 32 raw bytes; ``ValueError`` when it is not one."""
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _sbom_path(reference: str) -> Path | None:
    """The local file a ``file:`` SBOM reference names; None for references we cannot check."""
    return Path(reference[len("file:") :]) if reference.startswith("file:") else None


def verify_entry(
    entry: CatalogModel,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    should_stop: Callable[[], bool] | None = None,
) -> VerifyResult:
    """Check ``entry`` against its trust policy; failures and warnings are collected, never raised.

    Hard failures whatever the mode: a source outside ``allowed_sources``, a missing or unreadable
    file, a size or digest mismatch, a signature that does not verify with its trusted key.
    Shortfalls (fail in ``strict``, warn in ``permissive``): no valid signature from a trusted key
    when one is required, a signature by a key that is not trusted, no SBOM when one is required.
    ``should_stop``: see :func:`sha256_file`.
    """
    policy = entry.trust_policy
    errors: list[str] = []
    warnings: list[str] = []
    shortfalls = errors if policy.mode is TrustMode.strict else warnings

    if not any(entry.source.startswith(prefix) for prefix in policy.allowed_sources):
        errors.append(f"source {entry.source!r} is not allowed by the trust policy ({policy.allowed_sources})")

    for file in entry.files:
        try:
            # A size mismatch is known from a stat: no need to hash gigabytes to learn it.
            size = os.stat(file.path).st_size
            if size != file.size_bytes:
                errors.append(f"{file.path}: {size} bytes on disk, expected {file.size_bytes}")
                continue
            actual, _ = sha256_file(file.path, should_stop)
        except FileNotFoundError:
            errors.append(f"{file.path}: file is missing")
            continue
        except OSError as exc:
            errors.append(f"{file.path}: cannot be read ({exc.strerror or type(exc).__name__})")
            continue
        if actual != file.sha256:
            errors.append(f"{file.path}: digest mismatch: file has sha256:{actual}, expected sha256:{file.sha256}")

    trusted_signatures = 0
    payload = entry.digest.encode()
    for signature in entry.signatures:
        key = trusted_keys.get(signature.key_id)
        if key is None:
            shortfalls.append(f"signature by key {signature.key_id!r} cannot be checked: not a trusted key")
            continue
        try:
            key.verify(base64.b64decode(signature.signature, validate=True), payload)
        except (InvalidSignature, binascii.Error, ValueError):
            errors.append(f"signature by key {signature.key_id!r} is invalid for {entry.digest}")
            continue
        trusted_signatures += 1
    if policy.require_signature and trusted_signatures == 0:
        shortfalls.append(
            "no valid signature by a trusted key" if entry.signatures else "no signature (the policy requires one)"
        )

    if entry.sbom is None:
        if policy.require_sbom:
            shortfalls.append("no SBOM (the policy requires one)")
    else:
        sbom_path = _sbom_path(entry.sbom)
        if sbom_path is not None and not sbom_path.is_file():
            (shortfalls if policy.require_sbom else warnings).append(f"SBOM {entry.sbom!r} is missing")

    return VerifyResult(
        status=VerificationStatus.failed if errors else VerificationStatus.verified,
        checked_at=datetime.now(UTC),
        warnings=warnings,
        errors=errors,
    )
