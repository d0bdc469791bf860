"""One engine process: spawn it, keep the tail of its log, learn how it ended, stop it by pid.

The child runs in its own session (a Ctrl-C meant for orchestratord does not reach it; we stop it
in order) and, on Linux, is killed by the kernel if orchestratord itself dies (``PR_SET_PDEATHSIG``),
so no engine outlives the process that supervises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Mapping, Sequence

log = logging.getLogger("llama_orch.pools.process")

_PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 60


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def describe_exit(returncode: int) -> str:
    """``exited with status 1`` / ``was killed by SIGKILL``, for humans."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class EngineProcess:
    """A started child process whose output (stdout and stderr together) is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._reader = asyncio.get_running_loop().create_task(self._read_output(), name=f"log:{name}")

    @classmethod
    async def spawn(cls, argv: Sequence[str], *, env: Mapping[str, str], name: str) -> EngineProcess:
        """Start ``argv``; raises OSError when it cannot be executed."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        log.info("started %s (pid %d)", name, proc.pid, extra={"pid": proc.pid, "narration": f"{name} starting"})
        return cls(proc, name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def _read_output(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.tail.append(text)
                log.debug("%s: %s", self.name, text)

    async def wait(self) -> int:
        """Wait for the process to end (and its output to be read); its return code."""
        code = await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            # The pipe closes when the process ends; a grandchild holding it must not hang us.
            await asyncio.wait_for(asyncio.shield(self._reader), 2)
        return code

    def log_excerpt(self, lines: int = 3) -> str:
        """The last lines that look like errors (else the last lines), for error messages."""
        errors = [line for line in self.tail if " E " in line or "error" in line.lower() or "failed" in line.lower()]
        chosen = (errors or list(self.tail))[-lines:]
        return " | ".join(line.strip()[:300] for line in chosen)

    def kill(self) -> None:
        """SIGKILL by pid, at once (a hung engine)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, grace_s: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code. Idempotent."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                log.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing it", self.name, self.pid, grace_s)
                self.kill()
        code = await self.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        return code

    def __repr__(self) -> str:
        return f"<EngineProcess {self.name} pid={self.pid} rc={self.returncode}>"


def child_env(overrides: Mapping[str, str | None], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ``base`` (default ours) with ``overrides`` (None removes)."""
    env = dict(os.environ if base is None else base)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
