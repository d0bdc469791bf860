"""Run state on disk: ``<git-common-dir>/llorch/runs/<run_id>/``, outside every working tree.

* ``run.json``: what the run is (command, stages, agents, budgets, base, session id), written once
  and updated on resume;
* ``events.jsonl``: everything that happened, one JSON object per line, appended and fsynced one
  line at a time, so a ``kill -9`` loses at most the line being written (a torn last line is
  skipped when read back);
* ``status.json``: a snapshot for ``llama-orch status`` (agents, items, budget left, gate pass
  rate), replaced atomically;
* ``artifacts/``: the local journal of artifacts the server could not take yet.

What matters for a resume is also on the server as artifacts and in git as commits with
trailers; the events say which server tasks may still run (to cancel them) and which candidate
commits were made but not decided (to merge them without asking a model again).

One run at a time per repository: :meth:`RunState.lock` takes an ``flock`` on
``llorch/lock``, which the kernel drops when the process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["RunLockedError", "RunState", "list_runs", "new_run_id"]


class RunLockedError(RuntimeError):
    """Another loop command holds this repository."""


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


class RunState:
    """The folder of one run."""

    def __init__(self, llorch_dir: Path, run_id: str) -> None:
        self.llorch_dir = llorch_dir
        self.run_id = run_id
        self.dir = llorch_dir / "runs" / run_id
        self._events: Any = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every event appended (the CLI's progress lines)."""

    # -- creation and lookup -------------------------------------------------------------------

    @classmethod
    def create(cls, llorch_dir: Path, info: dict[str, Any], run_id: str | None = None) -> RunState:
        state = cls(llorch_dir, run_id or new_run_id())
        state.dir.mkdir(parents=True, exist_ok=False)
        state.write_info({"run_id": state.run_id, "created": time.time(), **info})
        return state

    @classmethod
    def open(cls, llorch_dir: Path, run_id: str) -> RunState:
        state = cls(llorch_dir, run_id)
        if not (state.dir / "run.json").is_file():
            known = ", ".join(r.run_id for r in list_runs(llorch_dir)[-5:]) or "none"
            raise FileNotFoundError(f"no run {run_id!r} in this repository (recent runs: {known})")
        return state

    @property
    def artifacts_dir(self) -> Path:
        return self.dir / "artifacts"

    # -- files ---------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "run.json").read_text())
        return data

    def write_info(self, info: dict[str, Any]) -> None:
        _atomic(self.dir / "run.json", json.dumps(info, indent=1, sort_keys=True))

    def append(self, event: str, **fields: Any) -> None:
        """Append one event (with its time) and make it durable before returning."""
        record = {"t": round(time.time(), 3), "event": event, **fields}
        line = json.dumps(record, separators=(",", ":"), sort_keys=True, default=str) + "\n"
        if self._events is None:
            self._events = (self.dir / "events.jsonl").open("a", encoding="utf-8")
        self._events.write(line)
        self._events.flush()
        os.fsync(self._events.fileno())
        for listener in self.listeners:
            listener(record)

    def events(self) -> list[dict[str, Any]]:
        """Every complete event, in order (a torn last line is skipped)."""
        path = self.dir / "events.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def write_status(self, status: dict[str, Any]) -> None:
        _atomic(self.dir / "status.json", json.dumps(status, indent=1, sort_keys=True, default=str))

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.dir / "status.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with repo_lock(self.llorch_dir):
            yield


@contextlib.contextmanager
def repo_lock(llorch_dir: Path) -> Iterator[None]:
    """Hold the repository's loop lock (non-blocking: :class:`RunLockedError` when taken)."""
    llorch_dir.mkdir(parents=True, exist_ok=True)
    handle = (llorch_dir / "lock").open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(f"another loop command works in this repository ({holder}): wait for it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def list_runs(llorch_dir: Path) -> list[RunState]:
    """Runs of this repository, oldest first."""
    runs_dir = llorch_dir / "runs"
    if not runs_dir.is_dir():
        return []
    # Run ids start with their UTC creation time, so their order is their age.
    names = sorted(p.name for p in runs_dir.iterdir() if (p / "run.json").is_file())
    return [RunState(llorch_dir, name) for name in names]


def _atomic(path: Path, text: str) -> None:
    temp = path.with_suffix(f".tmp{os.getpid()}")
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
