"""The model cache's small parts: digests, the digest stamp beside a cached file, file locks."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from llama_orch.errors import ModelUnavailable

Progress = Callable[[int, int | None], None]
"""``progress(bytes_done, bytes_total_or_None)``, called on the event loop's thread."""

CHUNK = 1 << 20
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


async def verify_file(path: Path, want: str) -> None:
    got = await asyncio.to_thread(sha256_of, path)
    if got != want:
        raise ModelUnavailable(
            f"model file {path} has sha256 {got}, expected {want}", details={"sha256": got, "expected_sha256": want}
        )


def stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_stamp(path: Path) -> str | None:
    try:
        text = stamp_path(path).read_text(encoding="ascii").strip()
    except OSError:
        return None
    return text if HEX64.match(text) else None


def write_stamp(path: Path, digest: str) -> None:
    tmp = stamp_path(path).with_suffix(".tmp")
    tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(tmp, stamp_path(path))


async def cached(path: Path, want: str | None) -> bool:
    """Whether ``path`` is a complete cached file matching ``want`` (its digest is stamped beside it)."""
    if not await asyncio.to_thread(path.is_file):
        return False
    if want is None:
        return True
    stamp = read_stamp(path)
    if stamp is None:
        stamp = await asyncio.to_thread(sha256_of, path)
        await asyncio.to_thread(write_stamp, path, stamp)
    if stamp != want:
        raise ModelUnavailable(
            f"cached model {path} has sha256 {stamp}, expected {want}; delete it to fetch again",
            details={"sha256": stamp, "expected_sha256": want},
        )
    return True


@contextlib.asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``path`` (created), awaited without blocking the loop.

    Serialises fetches of one file across pools and processes sharing the cache; it is held for
    the length of a download, so waiting is polled.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
