"""An orchestratord child process on a free loopback port, for one BDD run (or one test).

It is the real service, started the way an operator starts it (``python -m llama_orch.server``),
never imported: the runner talks to it over HTTP like to any live server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedOrchestratord", "free_port"]

_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_START_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedOrchestratord:
    """``orchestratord`` on ``127.0.0.1:<free port>`` with its own temporary data dir.

    >>> with EmbeddedOrchestratord(config="tests/bdd/orchestratord.yaml") as server:  # doctest: +SKIP
    ...     print(server.base_url)

    ``config`` is a YAML file for ``--config`` (None: the embedded default). The process is
    stopped by its pid (SIGTERM, then SIGKILL if it does not exit in time) and its log, which
    goes to a file, is kept in :attr:`log` for error messages.
    """

    def __init__(self, config: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None) -> None:
        self.config = Path(config) if config is not None else None
        self.env = env
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("orchestratord is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        if self._tmp is None:
            return ""
        try:
            return (Path(self._tmp.name) / "orchestratord.log").read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> str:
        """Start it and wait until ``/healthz`` answers; returns the base URL."""
        if self.config is not None and not self.config.is_file():
            raise FileNotFoundError(f"orchestratord config {self.config} does not exist")
        self._tmp = tempfile.TemporaryDirectory(prefix="llorch-embedded-")
        last_error = ""
        # A port found free may be taken before the child binds it; try a few.
        for _ in range(_START_ATTEMPTS):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_ready()
                return self.base_url
            except _Exited as exc:
                last_error = str(exc)
        self.stop()
        raise RuntimeError(f"orchestratord did not start: {last_error}")

    def _spawn(self) -> None:
        assert self._tmp is not None and self.port is not None
        tmp = Path(self._tmp.name)
        command = [sys.executable, "-m", "llama_orch.server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(tmp / "data")]
        if self.config is not None:
            command += ["--config", str(self.config)]
        env = {**os.environ, **(self.env or {})}
        env.pop("LLORCH_CONFIG", None)  # --config (or none: the embedded default), never an inherited one
        with open(tmp / "orchestratord.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise _Exited(f"exited with status {code}:\n{self.log[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"orchestratord did not answer /healthz within {_READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the process (by its pid) and remove its data dir; safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedOrchestratord:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Exited(Exception):
    """The child exited before it was ready (e.g. its port was taken)."""
