"""Fixtures for the CLI tests: servers to talk to, and the CLI run in-process or as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llama_orch.cli import app
from llama_orch.server.config import OrchestratorConfig
from tests.client._server import threaded_server
from tests.conftest import free_port

BIN = Path(sys.executable).parent
CLI = BIN / "llama-orch"
ORCHESTRATORD = BIN / "orchestratord"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


Cli = Callable[..., Result]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLORCH_")}
    env.update(extra)
    return env


@pytest.fixture
def cli() -> Cli:
    """``cli(base_url, *args, env=None, input=None)``: llama-orch in-process through typer's CliRunner."""

    def run(base_url: str | None, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        runner = CliRunner()
        argv = (["--base-url", base_url] if base_url else []) + list(args)
        result = runner.invoke(app, argv, env={k: None for k in os.environ if k.startswith("LLORCH_")} | (env or {}),
                               input=input)  # fmt: skip
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


LiveServer = Callable[..., str]


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    with ExitStack() as stack:
        yield lambda config=None: stack.enter_context(threaded_server(config))


@dataclass
class Stub:
    """A fake server: canned answers per (method, path); records the requests it got."""

    routes: dict[tuple[str, str], tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.routes[(method, path)] = (status, body, headers or {})


CAPS = {"api_version": "0.1.0", "pools": [], "sampler_profiles": []}


@pytest.fixture
def stub() -> Iterator[Stub]:
    """A stdlib HTTP server in a thread that answers what the test tells it to."""
    state = Stub()
    state.answer("GET", "/v1/capabilities", 200, CAPS)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            state.requests.append((self.command, path, dict(self.headers)))
            status, body, headers = state.routes.get(
                (self.command, path), (404, {"code": "NOT_FOUND", "message": "no route", "retriable": False}, {})
            )
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "text/html")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"nothing ready on port {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def orchestratord(tmp_path: Path) -> Iterator[Callable[[OrchestratorConfig | None], str]]:
    """Start ``orchestratord --port P`` as a process (optionally with a config); returns its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: OrchestratorConfig | None = None) -> str:
        port = free_port()
        args = [str(ORCHESTRATORD), "--port", str(port), "--data-dir", str(tmp_path / f"data-{port}")]
        if config is not None:
            path = tmp_path / f"config-{port}.yaml"
            path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
            args += ["--config", str(path)]
        proc = subprocess.Popen(args, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_ready(proc, port)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        stop(proc)
