"""Shared helpers: processes pinned to a CPU, readiness checks, CPU accounting, statistics."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = sys.executable
HOST = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def venv_tool(name: str) -> str:
    """A console script from the project's virtual environment (falls back to PATH)."""
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cpus:
    """The two cores the benchmark uses: servers under test on ``server``, load on ``load``."""

    server: int | None
    load: int | None

    @property
    def pinned(self) -> bool:
        return self.server is not None and self.load is not None

    def describe(self) -> str:
        if not self.pinned:
            return "not pinned (fewer than 2 usable CPUs)"
        return f"server under test on CPU {self.server}; load generators, mock engine and clients on CPU {self.load}"


def pick_cpus() -> Cpus:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Cpus(None, None)
    return Cpus(allowed[0], allowed[1])


def pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


@dataclass
class Proc:
    """A child process started by the benchmark; always stopped by :meth:`stop` (by its pid)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


def start(name: str, argv: Sequence[str], *, cpu: int | None, log_dir: Path) -> Proc:
    """Start ``argv`` with stdout/stderr to a log file, pinned to ``cpu``."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    popen = subprocess.Popen(  # argv is built by this package, never from user input
        list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env
    )
    proc = Proc(name, popen, log_path, log)
    try:
        pin(popen.pid, cpu)
    except OSError:
        proc.stop()
        raise
    return proc


@contextlib.contextmanager
def running(name: str, argv: Sequence[str], *, cpu: int | None, log_dir: Path, ready_url: str) -> Iterator[Proc]:
    """Start a server process, wait until ``ready_url`` answers 200, and stop it afterwards."""
    proc = start(name, argv, cpu=cpu, log_dir=log_dir)
    try:
        wait_ready(proc, ready_url)
        yield proc
    finally:
        proc.stop()


def wait_ready(proc: Proc, url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout_s:g} s:\n{proc.log_tail()}")


def run_json(name: str, argv: Sequence[str], *, cpu: int | None, log_dir: Path, timeout_s: float) -> dict[str, Any]:
    """Run a measuring child to completion (pinned to ``cpu``); its last stdout line is a JSON result."""
    err_path = log_dir / f"{name}.err"
    with err_path.open("wb") as err:
        popen = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT)
        try:
            pin(popen.pid, cpu)
            out, _ = popen.communicate(timeout=timeout_s)
        finally:
            if popen.poll() is None:
                os.kill(popen.pid, signal.SIGKILL)
                popen.wait(5)
    if popen.returncode != 0:
        raise RuntimeError(f"{name} failed ({popen.returncode}):\n{err_path.read_text(errors='replace')[-3000:]}")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"{name} printed no result:\n{err_path.read_text(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0.0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def sched_seconds(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for a CPU) of ``pid``'s main thread so far.

    From ``/proc/PID/schedstat``; the wait shows how much other work on the machine delayed it.
    """
    try:
        run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return cpu_seconds(pid), 0.0
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def admission_body(target_bytes: int = 450, *, max_tokens: int = 64, seed: int = 42) -> bytes:
    """A realistic ``POST /v1/tasks`` body of about ``target_bytes`` bytes."""
    base: dict[str, Any] = {
        "prompt": "",
        "max_tokens": max_tokens,
        "priority": "interactive",
        "seed": seed,
        "determinism": "best_effort",
        "workload": "completion",
        "model_ref": "mock:tiny",
        "sampler_profile_version": "llorch/sampler@1",
    }
    filler = (
        "Write a Python function that parses an ISO-8601 duration string and returns the number of "
        "seconds it denotes; handle weeks, days, hours, minutes and fractional seconds, and raise "
        "ValueError with a helpful message on malformed input. Include type hints and a docstring. "
    )
    overhead = len(json.dumps(base, separators=(",", ":")).encode())
    prompt = (filler * 4)[: max(1, target_bytes - overhead)]
    base["prompt"] = prompt
    return json.dumps(base, separators=(",", ":")).encode()


def table(rows: list[list[str]]) -> str:
    """Rows as an indented text table: the first row a header with a rule under it; the first
    column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_result(result: dict[str, Any], out: Path | None) -> None:
    """A benchmark module's ``--out``: its JSON result, when asked for."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
