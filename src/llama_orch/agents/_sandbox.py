"""Run one command with a time limit, a memory limit, a process limit and no network, where the OS allows.

What is available is found at run time (:func:`probe_support`, once per process) and every run
reports what it actually got, aspect by aspect, in :class:`Isolation`: nothing is claimed that was
not applied. The mechanisms, best first:

* **network**: a private network namespace (``unshare --net``) with only its own loopback, up;
  inside a user namespace when one can be made, so that even root inside cannot join the host's.
* **processes**: a pids cgroup (``pids.max``) when we may create one (see :mod:`._cgroup`), else
  ``RLIMIT_NPROC`` inside a private user namespace (counted per namespace) when we are not root.
  Root is exempt from ``RLIMIT_NPROC``, so as root without a cgroup there is no process limit.
* **memory**: ``RLIMIT_AS`` (address space), always.
* **time**: the timeout kills the whole process group.
* **filesystem**: not isolated (reported as missing): the gate runs in its checkout with a fresh
  ``HOME``/``TMPDIR``, but may touch whatever its user may.
* **cleanup**: a pid namespace (``unshare --pid --fork --kill-child``): when the gate's first process
  dies, the kernel kills every process it left; plus the process group and the cgroup's members.

The chain is ``unshare <flags> -- python -I -S -c LAUNCHER <config> -- argv``: the launcher (pid 1 of
the namespace) joins the cgroup, brings the loopback up, sets the rlimits, then executes the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from llama_orch.agents._cgroup import PidsCgroup, PidsCgroupRoot, find_pids_cgroup_root

__all__ = ["Isolation", "Limits", "SandboxRun", "SandboxSupport", "probe_support", "run_sandboxed"]

LimitHit = Literal["timeout", "memory", "processes"]

START_FAILED = 125
"""Exit status of the launcher when it could not set the sandbox up."""
EXEC_FAILED = 127
"""Exit status of the launcher when the command itself could not be executed."""
_MARK = "llorch-sandbox:"

_LAUNCHER = r"""
import json, os, resource, sys
cfg = json.loads(sys.argv[1]); argv = sys.argv[3:]
def die(code, msg):
    os.write(2, ("llorch-sandbox: " + msg + "\n").encode()); os._exit(code)
try:
    if cfg.get("cgroup"):
        with open(cfg["cgroup"], "w") as f:
            f.write("0")
    if cfg.get("lo"):
        import fcntl, socket, struct
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))
        s.close()
    for name, value in cfg.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
except OSError as e:
    die(125, "cannot set the sandbox up: %s" % e)
try:
    os.execvp(argv[0], argv)
except OSError as e:
    die(127, "cannot execute %r: %s" % (argv[0], e.strerror or e))
"""

_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_FORK_SIGNS = ("Resource temporarily unavailable", "BlockingIOError", "fork: retry", "can't fork")


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    timeout_s: float
    memory_mb: int | None = 2048
    max_procs: int | None = 256
    network: bool = False
    output_cap_bytes: int = 64 * 1024
    """Per stream; beyond it the middle is dropped (a quarter of the cap kept from the start, the rest from the end)."""


@dataclass(frozen=True)
class Isolation:
    """What a run got (``applied``) and what it asked for but could not get (``missing``), per aspect."""

    applied: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"applied": dict(self.applied), "missing": dict(self.missing)}


@dataclass(frozen=True)
class SandboxSupport:
    """What this machine offers, found once by :func:`probe_support`."""

    unshare_flags: tuple[str, ...] | None
    """The ``unshare`` flags that work here (None: no namespaces at all)."""
    user_ns: bool
    net_ns: bool
    pid_ns: bool
    cgroup: PidsCgroupRoot | None
    is_root: bool
    notes: dict[str, str]
    """Why a mechanism is missing, per mechanism."""

    @property
    def summary(self) -> str:
        have = [n for n, ok in (("user-ns", self.user_ns), ("net-ns", self.net_ns), ("pid-ns", self.pid_ns)) if ok]
        if self.cgroup is not None:
            have.append(self.cgroup.describe())
        return ", ".join(have) or "no isolation beyond rlimits"


@dataclass(frozen=True)
class SandboxRun:
    """How one sandboxed command ended."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    stdout_dropped: int
    stderr_dropped: int
    timed_out: bool
    limit_hit: LimitHit | None
    start_error: str | None
    """Set when the command never ran (not found, sandbox setup failed)."""
    isolation: Isolation

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None


# -- probing ------------------------------------------------------------------------------------------

_FLAG_SETS = (
    ("--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"),
    ("--net", "--pid", "--fork", "--kill-child"),
    ("--user", "--map-root-user", "--pid", "--fork", "--kill-child"),
    ("--pid", "--fork", "--kill-child"),
)
_probe_lock = threading.Lock()


@functools.cache
def _probe() -> SandboxSupport:
    notes: dict[str, str] = {}
    is_root = os.geteuid() == 0
    flags: tuple[str, ...] | None = None
    unshare = shutil.which("unshare")
    if unshare is None:
        notes["namespaces"] = "`unshare` (util-linux) is not installed"
    else:
        errors: list[str] = []
        for candidate in _FLAG_SETS:
            config = json.dumps({"lo": "--net" in candidate})
            argv = [unshare, *candidate, "--", sys.executable, "-I", "-S", "-c", _LAUNCHER, config, "--", "true"]
            try:
                done = subprocess.run(argv, capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"unshare {' '.join(candidate)}: {exc}")
                continue
            if done.returncode == 0:
                flags = candidate
                break
            errors.append(f"unshare {' '.join(candidate)}: {done.stderr.decode(errors='replace').strip()}")
        if flags is None:
            notes["namespaces"] = "; ".join(errors)
    user_ns = flags is not None and "--user" in flags
    if flags is not None and not user_ns:
        notes["user-ns"] = "user namespaces are not available here"
    if flags is None or "--net" not in flags:
        notes.setdefault("net-ns", "network namespaces are not available here")
    cgroup, why = find_pids_cgroup_root()
    if cgroup is None:
        notes["cgroup"] = why
    return SandboxSupport(
        unshare_flags=flags,
        user_ns=user_ns,
        net_ns=flags is not None and "--net" in flags,
        pid_ns=flags is not None and "--pid" in flags,
        cgroup=cgroup,
        is_root=is_root,
        notes=notes,
    )


def probe_support() -> SandboxSupport:
    """Find (once per process) which isolation mechanisms work on this machine. Blocking: a few short runs."""
    with _probe_lock:
        return _probe()


# -- one run ------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    argv: list[str]
    isolation: Isolation
    cgroup: PidsCgroup | None


def _plan(argv: Sequence[str], limits: Limits, support: SandboxSupport) -> _Plan:
    applied: dict[str, str] = {}
    missing: dict[str, str] = {}
    rlimits: dict[str, int] = {"RLIMIT_CORE": 0}
    flags = list(support.unshare_flags or ())
    if limits.network:
        flags = [f for f in flags if f != "--net"]
        applied["network"] = "allowed (the gate's config asks for network)"
    elif support.net_ns:
        where = "inside a user namespace" if support.user_ns else "no user namespace: root inside could leave it"
        applied["network"] = f"private network namespace, own loopback only ({where})"
    else:
        missing["network"] = support.notes.get("net-ns", "no network namespace")

    cgroup: PidsCgroup | None = None
    if limits.max_procs is not None:
        if support.cgroup is not None:
            try:
                cgroup = support.cgroup.create(limits.max_procs)
                applied["processes"] = f"{support.cgroup.describe()} (pids.max={limits.max_procs})"
            except OSError as exc:
                missing["processes"] = f"cannot create a pids cgroup: {exc.strerror or exc}"
        if cgroup is None and not support.is_root and support.user_ns:
            # Counted per user namespace (Linux >= 5.14 ucounts), so the gate's own processes only.
            rlimits["RLIMIT_NPROC"] = limits.max_procs
            applied["processes"] = f"RLIMIT_NPROC={limits.max_procs} in a private user namespace"
            missing.pop("processes", None)
        elif cgroup is None:
            why = "root is exempt from RLIMIT_NPROC" if support.is_root else "RLIMIT_NPROC would count all of ours"
            no_cgroup = support.notes.get("cgroup", "not available")
            missing.setdefault("processes", f"{why}, and no pids cgroup ({no_cgroup})")
    if limits.memory_mb is not None:
        rlimits["RLIMIT_AS"] = limits.memory_mb * 1024 * 1024
        applied["memory"] = f"RLIMIT_AS={limits.memory_mb} MiB"
    applied["time"] = f"timeout {limits.timeout_s:g} s, then SIGKILL to the process group"
    cleanup = ["process group"]
    if support.pid_ns:
        cleanup.insert(0, "pid namespace")
    if cgroup is not None:
        cleanup.append("cgroup members")
    applied["cleanup"] = " + ".join(cleanup)
    # Said plainly, since it is easy to assume otherwise: no mount namespace, no read-only binds.
    missing["filesystem"] = "not isolated: the gate may read and write wherever its user can"

    config = {"cgroup": str(cgroup.procs_file) if cgroup else None, "lo": "--net" in flags, "rlimits": rlimits}
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config), "--", *argv]
    unshare = shutil.which("unshare")
    full = [unshare, *flags, "--", *launcher] if flags and unshare else launcher
    return _Plan(full, Isolation(applied, missing), cgroup)


class _Capture:
    """Keeps the first quarter of the cap and the last three quarters; counts what it dropped."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 4
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        excess = len(self.tail) - self.tail_cap
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes truncated ...]\n" if self.dropped else ""
        return self.head.decode(errors="replace") + middle + self.tail.decode(errors="replace")


async def _pump(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        capture.feed(chunk)


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_sandboxed(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    limits: Limits,
    support: SandboxSupport | None = None,
) -> SandboxRun:
    """Run ``argv`` in ``cwd`` under ``limits``; never raises for the command's own failures."""
    if not argv:
        raise ValueError("argv must not be empty")
    if support is None:
        support = await asyncio.to_thread(probe_support)
    plan = await asyncio.to_thread(_plan, argv, limits, support)
    out, err = _Capture(limits.output_cap_bytes), _Capture(limits.output_cap_bytes)
    try:
        proc = await asyncio.create_subprocess_exec(
            *plan.argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        if plan.cgroup is not None:
            await asyncio.to_thread(plan.cgroup.remove)
        return SandboxRun(tuple(argv), None, "", "", 0, 0, False, None, f"cannot start: {exc}", plan.isolation)
    readers = [asyncio.create_task(_pump(proc.stdout, out)), asyncio.create_task(_pump(proc.stderr, err))]
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), limits.timeout_s)
        except TimeoutError:
            timed_out = True
    finally:
        # Nothing the gate started outlives it: its group, its pid namespace, its cgroup.
        _killpg(proc.pid)
        if plan.cgroup is not None:
            await asyncio.to_thread(plan.cgroup.kill_all)
        if proc.returncode is None:
            await proc.wait()
        _, pending = await asyncio.wait(readers, timeout=5.0)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        hits = plan.cgroup.limit_hits() if plan.cgroup is not None else 0
        if plan.cgroup is not None:
            await asyncio.to_thread(plan.cgroup.remove)
    stdout, stderr = out.text(), err.text()
    return SandboxRun(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        stdout_dropped=out.dropped,
        stderr_dropped=err.dropped,
        timed_out=timed_out,
        limit_hit=_limit_hit(timed_out, proc.returncode, hits, stdout + stderr, plan.isolation),
        start_error=_start_error(proc.returncode, stderr),
        isolation=plan.isolation,
    )


def _limit_hit(
    timed_out: bool, returncode: int | None, cgroup_hits: int, output: str, isolation: Isolation
) -> LimitHit | None:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return None
    if cgroup_hits > 0:
        return "processes"
    # Without a cgroup's counter, the signs the command itself printed are all we have.
    if "RLIMIT_NPROC" in isolation.applied.get("processes", "") and any(s in output for s in _FORK_SIGNS):
        return "processes"
    if "memory" in isolation.applied and any(s in output for s in _MEMORY_SIGNS):
        return "memory"
    return None


def _start_error(returncode: int | None, stderr: str) -> str | None:
    if returncode not in (START_FAILED, EXEC_FAILED):
        return None
    for line in stderr.splitlines():
        if line.startswith(_MARK):
            return line[len(_MARK) :].strip()
    return None
