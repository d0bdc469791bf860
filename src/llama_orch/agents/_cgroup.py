"""A pids cgroup per sandboxed run: a hard cap on its processes and threads, and a way to find them all.

Root is exempt from ``RLIMIT_NPROC``, so when we run as root the process limit comes from the pids
controller: cgroup v1 (a ``pids`` hierarchy) or v2 (``pids`` in the unified hierarchy), whichever
we may write to. Runs get their own child of ``<our cgroup>/llorch-gates``; the sandbox launcher
moves itself in (by writing ``0`` to ``cgroup.procs``) before it executes the gate, so every
process the gate ever starts is inside and counted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PidsCgroup", "PidsCgroupRoot", "find_pids_cgroup_root"]

_PARENT = "llorch-gates"
_names = itertools.count(1)


@dataclass(frozen=True)
class PidsCgroupRoot:
    """Where our run cgroups are created (``<hierarchy>/<our cgroup>/llorch-gates``)."""

    path: Path
    version: int

    def create(self, max_procs: int) -> PidsCgroup:
        """A fresh cgroup for one run, limited to ``max_procs`` tasks."""
        path = self.path / f"g{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        try:
            (path / "pids.max").write_text(f"{max_procs}\n")
        except OSError:
            path.rmdir()
            raise
        return PidsCgroup(path, max_procs)

    def describe(self) -> str:
        return f"pids cgroup v{self.version}"


@dataclass(frozen=True)
class PidsCgroup:
    path: Path
    max_procs: int

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in self.procs_file.read_text().split()]
        except FileNotFoundError:
            return []

    def limit_hits(self) -> int:
        """How many times a fork or clone was refused for the limit (``pids.events``)."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (FileNotFoundError, ValueError):
            pass
        return 0

    def kill_all(self, *, attempts: int = 100, pause_s: float = 0.02) -> bool:
        """SIGKILL every process inside until none is left (bounded); True when it is empty."""
        kill_file = self.path / "cgroup.kill"  # cgroup v2 (5.14+): one write kills the whole subtree
        for _ in range(attempts):
            pids = self.pids()
            if not pids:
                return True
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1\n")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(pause_s)
        return not self.pids()

    def remove(self) -> None:
        if self.kill_all():
            with contextlib.suppress(FileNotFoundError, OSError):
                self.path.rmdir()


def find_pids_cgroup_root() -> tuple[PidsCgroupRoot | None, str]:
    """Our writable pids cgroup parent, or None and why there is none."""
    mounts = _cgroup_mounts()
    memberships = _memberships()
    reasons: list[str] = []
    v1 = mounts.get("v1:pids")
    if v1 is not None and "pids" in memberships:
        root, why = _prepare(v1 / memberships["pids"].lstrip("/") / _PARENT, 1)
        if root is not None:
            return root, ""
        reasons.append(f"v1: {why}")
    v2 = mounts.get("v2")
    if v2 is not None and "" in memberships:
        own = v2 / memberships[""].lstrip("/")
        root, why = _prepare_v2(own)
        if root is not None:
            return root, ""
        reasons.append(f"v2: {why}")
    if not reasons:
        reasons.append("no pids controller mounted")
    return None, "; ".join(reasons)


def _prepare(path: Path, version: int) -> tuple[PidsCgroupRoot | None, str]:
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        return None, f"cannot create {path}: {exc.strerror or exc}"
    if not (path / "cgroup.procs").exists():
        return None, f"{path} is not a cgroup"
    _sweep(path)
    probe = path / f"g{os.getpid()}-probe-{uuid.uuid4().hex[:8]}"
    try:  # the parent may exist (made by someone else) and still not be ours to write in
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return None, f"cannot create cgroups in {path}: {exc.strerror or exc}"
    return PidsCgroupRoot(path, version), ""


def _prepare_v2(own: Path) -> tuple[PidsCgroupRoot | None, str]:
    if "pids" not in _read(own / "cgroup.controllers").split():
        return None, f"the pids controller is not available in {own}"
    root, why = _prepare(own / _PARENT, 2)
    if root is None:
        return None, why
    if "pids" not in _read(root.path / "cgroup.controllers").split():
        try:
            (own / "cgroup.subtree_control").write_text("+pids\n")
        except OSError as exc:
            return None, f"cannot enable pids below {own}: {exc.strerror or exc}"
    try:
        (root.path / "cgroup.subtree_control").write_text("+pids\n")
    except OSError as exc:
        return None, f"cannot enable pids below {root.path}: {exc.strerror or exc}"
    return root, ""


def _sweep(parent: Path) -> None:
    """Remove run cgroups left behind by processes that died before cleaning up (only theirs)."""
    for child in parent.iterdir():
        name = child.name
        if not (child.is_dir() and name.startswith("g") and "-" in name):
            continue
        pid_text = name[1:].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                child.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cgroup_mounts() -> dict[str, Path]:
    mounts: dict[str, Path] = {}
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_point = Path(fields[4].replace("\\040", " "))
        if tail[0] == "cgroup2":
            mounts.setdefault("v2", mount_point)
        elif tail[0] == "cgroup" and "pids" in tail[2].split(","):
            mounts.setdefault("v1:pids", mount_point)
    return mounts


def _memberships() -> dict[str, str]:
    """Controller name (``""`` for v2) → our cgroup path in that hierarchy."""
    found: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found[controller] = parts[2]
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
