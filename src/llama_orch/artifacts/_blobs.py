"""The content-addressed blob folder: ``<root>/<first 2 hex>/<other 62 hex>`` of the bytes' SHA-256.

A blob appears under its final name only complete: it is written to a temporary file in the same
folder, flushed and fsynced, then renamed (atomic on POSIX), and the folder is fsynced so the
rename itself survives a power cut. A crash mid-write leaves at most a ``.tmp-*`` file, which no
reader ever opens and :meth:`BlobStore.sweep` removes later. All methods block: call them from a
worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

from llama_orch.errors import OrchError
from llama_orch_api import ErrorCode

TMP_PREFIX = ".tmp-"


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def write(self, sha256: str, data: bytes) -> None:
        """Store ``data`` (whose hex SHA-256 is ``sha256``) unless a complete copy is there already."""
        final = self.path(sha256)
        with contextlib.suppress(FileNotFoundError):
            # Renames are atomic, so a file under its final name was complete when written; the
            # size check only guards against a copy damaged since (then it is rewritten).
            if final.stat().st_size == len(data):
                return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # Two writers of the same blob both rename identical bytes into place: either wins.
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(final.parent)

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its address (``INTERNAL`` when missing or damaged)."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise OrchError(ErrorCode.INTERNAL, f"artifact content is missing from the blob store ({path})") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OrchError(ErrorCode.INTERNAL, f"artifact content is damaged in the blob store ({path})")
        return data

    def sweep(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by crashed writers; returns how many.

        Only old ones: a young temporary file may belong to another process writing right now.
        """
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for tmp in self.root.glob(f"*/{TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
