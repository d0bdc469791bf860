"""Streamed model downloads over https (and http to loopback): resume, size cap, sha256, atomic rename."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

from llama_orch.errors import ConfigError, ModelFetchForbidden, ModelUnavailable
from llama_orch.pools._cache import CHUNK, Progress, cached, file_lock, unlink, write_stamp

log = logging.getLogger("llama_orch.pools.models")

MAX_REDIRECTS = 5


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"model URL {redact_url(url)!r} has no host")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(f"model URL {redact_url(url)!r}: plain http is only allowed to loopback hosts; use https")
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"model URL {redact_url(url)!r}: only https (and http to loopback) are fetched")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` — no user info, query or fragment (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def url_cache_path(url: str, cache_dir: Path) -> Path:
    """Where ``url`` is cached: a folder per URL (hash of the URL less its query) and its file name."""
    parts = urlsplit(url)
    key = hashlib.sha256(f"{parts.scheme}://{parts.netloc}{parts.path}".encode()).hexdigest()[:20]
    name = Path(unquote(parts.path)).name or "model.gguf"
    name = re.sub(r"[^A-Za-z0-9._\-]", "_", name)[:200]
    return cache_dir / "url" / key / name


async def resolve_url(
    url: str, cache_dir: Path, allow_network: bool, want: str | None, max_bytes: int | None, progress: Progress | None
) -> Path:
    dest = url_cache_path(url, cache_dir)
    if await cached(dest, want):
        return dest
    if not allow_network:
        raise ModelFetchForbidden(
            f"model {redact_url(url)} is not cached (looked in {dest.parent}) and network fetches are forbidden "
            "(models.allow_network: false)",
            details={"cache_path": str(dest)},
        )
    async with file_lock(dest.with_name(dest.name + ".lock")):
        if await cached(dest, want):  # fetched by someone else while we waited
            return dest
        log.info("downloading model %s into %s", redact_url(url), dest, extra={"narration": "fetching a model"})
        await download(url, dest, expected_sha256=want, max_bytes=max_bytes, progress=progress)
    return dest


async def download(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
    progress: Progress | None = None,
    session: aiohttp.ClientSession | None = None,
) -> str:
    """Stream ``url`` into ``dest`` (through ``dest.part``) and return its sha256.

    An existing ``.part`` is resumed with ``Range`` (and ``If-Range`` when the validator of the
    first attempt is known); a server that answers ``200`` instead of ``206`` — or ``416`` — restarts
    the file from zero. Above ``max_bytes`` (declared or received) the partial file is deleted and
    the download refused; a digest mismatch deletes it too. A network failure keeps the ``.part``
    so the next attempt resumes. The caller holds the lock on ``dest``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    shown = redact_url(url)
    own_session = session is None
    http = session or aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60), auto_decompress=False
    )
    try:
        for _attempt in range(2):  # the second only after a 416 dropped a bad partial
            have = part.stat().st_size if part.exists() else 0
            validator = _read_validator(meta) if have else None
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
                if validator:
                    headers["If-Range"] = validator
            try:
                async with _get_following(http, url, headers) as resp:
                    if resp.status == 416 and have:
                        log.info("server refused to resume %s at %d bytes: restarting", shown, have)
                        unlink(part, meta)
                        continue
                    if resp.status not in (200, 206):
                        raise ModelUnavailable(
                            f"download of {shown} failed: HTTP {resp.status}",
                            retriable=resp.status >= 500 or resp.status in (408, 429),
                            details={"status": resp.status},
                        )
                    resumed, total = _resume_plan(resp, have)
                    if not resumed:
                        if have:
                            log.info("server ignored the range for %s: restarting from zero", shown)
                        have = 0
                    if max_bytes is not None and total is not None and total > max_bytes:
                        unlink(part, meta)
                        raise ModelUnavailable(
                            f"model at {shown} is {total} bytes, over the cap of {max_bytes} (models.max_bytes)",
                            details={"size": total, "max_bytes": max_bytes},
                        )
                    new_validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
                    if not resumed:
                        _write_validator(meta, new_validator)
                    digest = hashlib.sha256()
                    if resumed:
                        await asyncio.to_thread(_hash_into, digest, part)
                    done = have
                    with part.open("ab" if resumed else "wb") as fh:
                        if progress is not None:
                            progress(done, total)
                        async for chunk in resp.content.iter_chunked(CHUNK):
                            done += len(chunk)
                            if max_bytes is not None and done > max_bytes:
                                fh.close()
                                unlink(part, meta)
                                raise ModelUnavailable(
                                    f"model at {shown} exceeds the cap of {max_bytes} bytes (models.max_bytes)",
                                    details={"max_bytes": max_bytes},
                                )
                            fh.write(chunk)
                            digest.update(chunk)
                            if progress is not None:
                                progress(done, total)
                        await asyncio.to_thread(_flush, fh)
                    if total is not None and done != total:
                        raise ModelUnavailable(
                            f"download of {shown} ended at {done} of {total} bytes; the next attempt resumes",
                            retriable=True,
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ModelUnavailable(
                    f"download of {shown} failed ({type(exc).__name__}: {exc}); the next attempt resumes",
                    retriable=True,
                ) from exc
            got = digest.hexdigest()
            if expected_sha256 is not None and got != expected_sha256:
                unlink(part, meta)
                raise ModelUnavailable(
                    f"model downloaded from {shown} has sha256 {got}, expected {expected_sha256}; deleted",
                    details={"sha256": got, "expected_sha256": expected_sha256},
                )
            await asyncio.to_thread(write_stamp, dest, got)
            os.replace(part, dest)
            unlink(meta)
            log.info("model %s downloaded: %d bytes, sha256 %s", shown, done, got)
            return got
        raise ModelUnavailable(f"download of {shown} failed: the server refused the range twice", retriable=True)
    finally:
        if own_session:
            await http.close()


@contextlib.asynccontextmanager
async def _get_following(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET following redirects by hand, so every hop obeys the URL policy (no plain-http detour)."""
    for _ in range(MAX_REDIRECTS + 1):
        resp = await http.get(url, headers=headers, allow_redirects=False)
        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
            location = urljoin(url, resp.headers["Location"])
            resp.release()
            try:
                check_url(location)
            except ConfigError as exc:
                raise ModelUnavailable(f"refused redirect: {exc}") from None
            url = location
            continue
        try:
            yield resp
        finally:
            resp.release()
        return
    raise ModelUnavailable(f"too many redirects fetching {redact_url(url)}")


def _resume_plan(resp: aiohttp.ClientResponse, have: int) -> tuple[bool, int | None]:
    """(resumed?, total size or None) from a 200/206 answer to a request for ``bytes=have-``."""
    if resp.status == 206 and have:
        match = re.match(r"^bytes (\d+)-(\d+)/(\d+|\*)$", resp.headers.get("Content-Range", ""))
        if match is not None and int(match.group(1)) == have:
            total = match.group(3)
            return True, int(total) if total != "*" else None
        return False, None  # a range we did not ask for: start over (the body is then not the file)
    length = resp.headers.get("Content-Length")
    return False, int(length) if length and length.isdigit() else None


def _hash_into(digest: Any, path: Path) -> None:
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)


def _flush(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _read_validator(meta: Path) -> str | None:
    try:
        value = json.loads(meta.read_text(encoding="utf-8")).get("validator")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _write_validator(meta: Path, validator: str | None) -> None:
    meta.write_text(json.dumps({"validator": validator}), encoding="utf-8")
