"""The model catalog: entries, their lifecycle, verification and the admission hook.

Writes go to SQLite first and then to an in-memory view; reads never touch SQLite. The view is
replaced, never mutated (copy-on-write), so the event loop reads it without a lock while a worker
thread writes: :meth:`Catalog.check_admissible` is one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from llama_orch.catalog._store import CatalogStore
from llama_orch.catalog._verify import VerificationStopped, load_public_key, overall_digest, verify_entry
from llama_orch.errors import AdmissionError, ConfigError, OrchError
from llama_orch_api import (
    CatalogFile,
    CatalogModel,
    CatalogModelCreate,
    ErrorCode,
    ModelSignature,
    ModelState,
    ModelStateRequest,
    TrustMode,
    TrustPolicy,
    TrustPolicySpec,
    VerificationStatus,
    VerifyResult,
)

log = logging.getLogger("llama_orch.catalog")

CATALOG_FILE = "catalog.sqlite3"
"""The catalog's file name inside the data dir."""

DEFAULT_POLICY = TrustPolicy(
    mode=TrustMode.permissive,
    allowed_sources=["file:", "hf:", "https://"],
    require_signature=True,
    require_sbom=False,
)
"""Every supported source, signatures wanted but (being permissive) only warned about when absent."""


def resolve_policy(base: TrustPolicy, overrides: TrustPolicySpec | None) -> TrustPolicy:
    """``base`` with the fields ``overrides`` sets replaced."""
    if overrides is None:
        return base.model_copy(deep=True)
    return base.model_copy(update=overrides.model_dump(exclude_none=True), deep=True)


@dataclass(frozen=True, slots=True)
class _Admission:
    """What admission needs to know about one model_ref, precomputed on every write."""

    entry_id: str
    retired: bool
    refusal: str | None
    """Why the model is untrusted, or None when it may be admitted as far as trust goes."""
    drain_deadline: float | None


def _admission_of(entry: CatalogModel) -> _Admission:
    status = entry.verification.status
    refusal = None
    if status is VerificationStatus.failed:
        first = entry.verification.errors[0] if entry.verification.errors else "see the catalog entry"
        refusal = f"model {entry.model_ref!r} failed verification (catalog entry {entry.id!r}): {first}"
    elif status is VerificationStatus.unverified and entry.trust_policy.mode is TrustMode.strict:
        refusal = f"model {entry.model_ref!r} has a strict trust policy and was never verified (entry {entry.id!r})"
    deadline = entry.drain_deadline_at.timestamp() if entry.drain_deadline_at is not None else None
    return _Admission(entry.id, entry.state is ModelState.Retired, refusal, deadline)


def _verified_inputs(entry: CatalogModel) -> tuple[object, ...]:
    """What a verification result depends on; entries never change these after creation."""
    return (entry.created_at, entry.source, entry.digest, entry.files, entry.signatures, entry.sbom, entry.trust_policy)


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    """The model catalog with trust verification (OC-CLI-2101).

    Synchronous methods do blocking SQLite writes; from an event loop call them through
    ``asyncio.to_thread``. :meth:`verify` hashes the model files in a worker thread itself.
    :meth:`check_admissible` and :meth:`drain_deadline` are O(1), lock-free and safe from any thread.

    >>> with Catalog(None) as catalog:  # in memory; Catalog.in_data_dir(...) persists
    ...     catalog.check_admissible("hf:org/repo/model.gguf")  # not catalogued: admissible
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        trusted_keys: Mapping[str, str] | None = None,
        default_policy: TrustPolicy | None = None,
    ) -> None:
        """``path``: the SQLite file, or None to keep the catalog in memory only.

        ``trusted_keys``: key id → base64 of a raw 32-byte Ed25519 public key.
        ``default_policy``: the policy of entries that do not override it (:data:`DEFAULT_POLICY`).
        """
        self.path = Path(path) if path is not None else None
        self.default_policy = (default_policy or DEFAULT_POLICY).model_copy(deep=True)
        keys: dict[str, Ed25519PublicKey] = {}
        for key_id, key in (trusted_keys or {}).items():
            try:
                keys[key_id] = load_public_key(key)
            except ValueError as exc:
                raise ConfigError(f"catalog trusted key {key_id!r}: {exc}") from exc
        self._keys = keys
        self._store = CatalogStore(self.path)
        self._write_lock = threading.Lock()
        self._entries: dict[str, CatalogModel] = {}
        self._admission: dict[str, _Admission] = {}
        self._open = False
        self._closing = threading.Event()

    @classmethod
    def in_data_dir(
        cls,
        data_dir: str | os.PathLike[str] | None,
        *,
        trusted_keys: Mapping[str, str] | None = None,
        default_policy: TrustPolicy | None = None,
    ) -> Catalog:
        """The catalog at ``<data_dir>/catalog.sqlite3``; in memory when ``data_dir`` is None."""
        path = Path(data_dir) / CATALOG_FILE if data_dir is not None else None
        return cls(path, trusted_keys=trusted_keys, default_policy=default_policy)

    # -- lifecycle --------------------------------------------------------------------------------

    def open(self) -> None:
        self._closing.clear()
        entries = self._store.open()
        with self._write_lock:
            self._entries = {e.id: e for e in entries}
            self._admission = {e.model_ref: _admission_of(e) for e in entries}
            self._open = True
        if self.path is None:
            log.warning(
                "model catalog is in memory only: no data_dir is configured, so catalog entries are "
                "lost when orchestratord stops",
                extra={"narration": "catalog is ephemeral (no data_dir)"},
            )
        else:
            log.info(
                "model catalog opened at %s with %d entries",
                self.path,
                len(entries),
                extra={"narration": f"catalog has {len(entries)} models"},
            )

    def close(self) -> None:
        """Idempotent. The in-memory view stays readable (admission keeps its last answer).

        A verification in progress stops at its next chunk instead of holding the shutdown.
        """
        self._open = False
        self._closing.set()
        self._store.close()

    def __enter__(self) -> Catalog:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the admission hook -------------------------------------------------------------------------

    def check_admissible(self, model_ref: str) -> None:
        """Raise :class:`AdmissionError` when a task for ``model_ref`` must be refused.

        ``MODEL_DEPRECATED`` (410) when the entry is ``Retired``; ``UNTRUSTED_ARTIFACT`` (403) when
        its last verification failed, or its policy is strict and it was never verified. A model_ref
        that is not in the catalog is admissible: the catalog is opt-in.
        """
        admission = self._admission.get(model_ref)
        if admission is None:
            return
        if admission.retired:
            raise AdmissionError(
                ErrorCode.MODEL_DEPRECATED,
                f"model {model_ref!r} is retired (catalog entry {admission.entry_id!r})",
                details={"catalog_id": admission.entry_id},
            )
        if admission.refusal is not None:
            raise AdmissionError(
                ErrorCode.UNTRUSTED_ARTIFACT, admission.refusal, details={"catalog_id": admission.entry_id}
            )

    def drain_deadline(self, model_ref: str) -> float | None:
        """When tasks still running on a retired ``model_ref`` must be ended, as a ``time.time()`` value.

        None when the model is not retired, not in the catalog, or was retired without a deadline
        (running tasks may then finish). A deadline in the past means: end them now.
        """
        admission = self._admission.get(model_ref)
        return admission.drain_deadline if admission is not None and admission.retired else None

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, entry_id: str) -> CatalogModel:
        """The entry (a copy); ``NOT_FOUND`` when there is none."""
        entry = self._entries.get(entry_id)
        if entry is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no catalog model {entry_id!r}")
        return entry.model_copy(deep=True)

    def find(self, model_ref: str) -> CatalogModel | None:
        """The entry for ``model_ref`` (a copy), or None."""
        admission = self._admission.get(model_ref)
        entry = self._entries.get(admission.entry_id) if admission is not None else None
        return entry.model_copy(deep=True) if entry is not None else None

    def model_digest(self, model_ref: str) -> str | None:
        """The catalogued digest of ``model_ref`` (recorded in task records), or None."""
        admission = self._admission.get(model_ref)
        entry = self._entries.get(admission.entry_id) if admission is not None else None
        return entry.digest if entry is not None else None

    def list_models(self, state: ModelState | None = None) -> list[CatalogModel]:
        """Every entry (copies), by id; only those in ``state`` when it is given."""
        entries = self._entries  # one reference: a consistent snapshot even while a write lands
        return [entries[i].model_copy(deep=True) for i in sorted(entries) if state is None or entries[i].state is state]

    # -- writes -----------------------------------------------------------------------------------------

    def _remember(self, entry: CatalogModel) -> None:
        """Publish ``entry`` in the view (call with the write lock held, after the store write)."""
        old = self._entries.get(entry.id)
        entries = {**self._entries, entry.id: entry}
        admission = {**self._admission, entry.model_ref: _admission_of(entry)}
        if old is not None and old.model_ref != entry.model_ref:
            del admission[old.model_ref]
        self._entries, self._admission = entries, admission

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("the catalog is not open")

    def create(self, spec: CatalogModelCreate) -> CatalogModel:
        """Register a model: ``Active``, ``unverified``. ``CONFLICT`` when its id or model_ref is taken."""
        self._require_open()
        now = _now()
        entry = CatalogModel(
            id=spec.id,
            model_ref=spec.model_ref,
            source=spec.source,
            files=[CatalogFile(path=f.path, sha256=f.sha256, size_bytes=f.size_bytes) for f in spec.files],
            digest=overall_digest([f.sha256 for f in spec.files]),
            tags=list(dict.fromkeys(spec.tags)),
            manifests=spec.manifests,
            signatures=[ModelSignature(key_id=s.key_id, signature=s.signature) for s in spec.signatures],
            sbom=spec.sbom,
            trust_policy=resolve_policy(self.default_policy, spec.trust_policy),
            state=ModelState.Active,
            state_reason=None,
            retired_at=None,
            drain_deadline_at=None,
            verification=VerifyResult(status=VerificationStatus.unverified, checked_at=None, warnings=[], errors=[]),
            created_at=now,
            updated_at=now,
        )
        with self._write_lock:
            if spec.id in self._entries:
                raise OrchError(ErrorCode.CONFLICT, f"catalog model {spec.id!r} exists already")
            holder = self._admission.get(spec.model_ref)
            if holder is not None:
                raise OrchError(
                    ErrorCode.CONFLICT, f"model_ref {spec.model_ref!r} is already catalogued as {holder.entry_id!r}"
                )
            try:
                self._store.insert(entry)
            except sqlite3.IntegrityError as exc:
                # The view and the table agree unless someone else writes the file; say so plainly.
                raise OrchError(ErrorCode.CONFLICT, f"catalog model {spec.id!r} conflicts with a stored entry") from exc
            self._remember(entry)
        log.info(
            "catalog model %s registered for %s",
            entry.id,
            entry.model_ref,
            extra={"catalog_id": entry.id, "narration": f"catalogued {entry.model_ref} ({len(entry.files)} files)"},
        )
        return entry.model_copy(deep=True)

    def delete(self, entry_id: str) -> None:
        """Forget an entry (its model_ref becomes uncatalogued, hence admissible). ``NOT_FOUND``."""
        self._require_open()
        with self._write_lock:
            entry = self._entries.get(entry_id)
            if entry is None:
                raise OrchError(ErrorCode.NOT_FOUND, f"no catalog model {entry_id!r}")
            self._store.delete(entry_id)
            entries = {k: v for k, v in self._entries.items() if k != entry_id}
            admission = {k: v for k, v in self._admission.items() if k != entry.model_ref}
            self._entries, self._admission = entries, admission
        log.info("catalog model %s deleted", entry_id, extra={"catalog_id": entry_id, "narration": "uncatalogued"})

    def set_state(self, entry_id: str, request: ModelStateRequest) -> CatalogModel:
        """Retire (optionally with a drain deadline) or reactivate an entry. ``NOT_FOUND``."""
        self._require_open()
        with self._write_lock:
            entry = self._entries.get(entry_id)
            if entry is None:
                raise OrchError(ErrorCode.NOT_FOUND, f"no catalog model {entry_id!r}")
            now = _now()
            if request.state is ModelState.Retired:
                deadline_ms = request.drain_deadline_ms
                update: dict[str, object] = {
                    "retired_at": entry.retired_at or now,
                    "drain_deadline_at": now + timedelta(milliseconds=deadline_ms) if deadline_ms is not None else None,
                }
            else:
                update = {"retired_at": None, "drain_deadline_at": None}
            updated = entry.model_copy(
                update={**update, "state": request.state, "state_reason": request.reason, "updated_at": now}
            )
            self._store.update(updated)
            self._remember(updated)
        log.info(
            "catalog model %s is now %s",
            entry_id,
            request.state.value,
            extra={"catalog_id": entry_id, "narration": f"{updated.model_ref} {request.state.value.lower()}"},
        )
        return updated.model_copy(deep=True)

    async def verify(self, entry_id: str) -> VerifyResult:
        """Verify an entry against its trust policy and store the result (also when it failed).

        The files are hashed in a worker thread, so the event loop keeps serving. ``NOT_FOUND``;
        ``CONFLICT`` when the entry was deleted and re-created while it was being verified.
        """
        return await asyncio.to_thread(self.verify_blocking, entry_id)

    def verify_blocking(self, entry_id: str) -> VerifyResult:
        """:meth:`verify` for callers that are not on an event loop (it reads whole files)."""
        self._require_open()
        entry = self.get(entry_id)
        started = time.monotonic()
        try:
            result = verify_entry(entry, self._keys, self._closing.is_set)
        except VerificationStopped as exc:
            raise OrchError(
                ErrorCode.INTERNAL, f"verification of {entry_id!r} stopped: the catalog is closing", retriable=True
            ) from exc
        with self._write_lock:
            current = self._entries.get(entry_id)
            if current is None:
                raise OrchError(ErrorCode.NOT_FOUND, f"catalog model {entry_id!r} was deleted while being verified")
            if _verified_inputs(current) != _verified_inputs(entry):
                raise OrchError(
                    ErrorCode.CONFLICT,
                    f"catalog model {entry_id!r} was replaced while being verified; verify it again",
                    retriable=True,
                )
            updated = current.model_copy(update={"verification": result, "updated_at": _now()})
            self._store.update(updated)
            self._remember(updated)
        log.log(
            logging.WARNING if result.status is VerificationStatus.failed else logging.INFO,
            "catalog model %s verification %s in %.1f s (%d errors, %d warnings)",
            entry_id,
            result.status.value,
            time.monotonic() - started,
            len(result.errors),
            len(result.warnings),
            extra={
                "catalog_id": entry_id,
                "narration": f"{entry.model_ref} {result.status.value}"
                + (f": {result.errors[0]}" if result.errors else ""),
            },
        )
        return result.model_copy(deep=True)
