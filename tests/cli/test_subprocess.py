"""The installed ``llama-orch`` console script, as a process, against orchestratord as a process."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llama_orch.cli import ExitCode
from llama_orch.client import Client
from llama_orch.engines.mock import MockSettings
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import Capabilities, ErrorEnvelope, ReplicaSetList
from tests.cli.conftest import CLI, clean_env, stop, wait_ready
from tests.conftest import fast_config, free_port

pytestmark = pytest.mark.subprocess

Orchestratord = Callable[[OrchestratorConfig | None], str]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=clean_env(), capture_output=True, text=True, timeout=timeout)


def test_status_and_capabilities_json(orchestratord: Orchestratord) -> None:
    base = orchestratord(fast_config())  # a mock pool named like the embedded default (a real engine is not the point)
    status = run_cli("--base-url", base, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert ReplicaSetList.model_validate_json(status.stdout).replicasets[0].pool == "default"
    caps = run_cli("--base-url", base, "--json", "capabilities")
    assert Capabilities.model_validate_json(caps.stdout).api_version == "0.1.0"
    human = run_cli("--base-url", base, "status")
    assert human.returncode == 0 and "default" in human.stdout


def test_bad_input_and_no_server_exit_cleanly() -> None:
    down = run_cli("--base-url", f"http://127.0.0.1:{free_port()}", "status")
    assert down.returncode == ExitCode.CONNECT and "cannot connect" in down.stderr
    bad_url = run_cli("--base-url", "not a url", "status")
    assert bad_url.returncode == ExitCode.USAGE and "base_url" in bad_url.stderr
    usage = run_cli("submit", "x", "--max-tokens", "-3")
    assert usage.returncode == ExitCode.USAGE
    for result in (down, bad_url, usage):
        assert "Traceback" not in result.stderr


def _read_some(stream: object, timeout: float) -> bytes:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
    try:
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout} s")
        return stream.read1(4096)  # type: ignore[attr-defined, no-any-return]
    finally:
        selector.close()


def test_ctrl_c_cancels_the_task_on_the_server(orchestratord: Orchestratord) -> None:
    base = orchestratord(fast_config(mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=1)))
    proc = subprocess.Popen(
        [str(CLI), "--base-url", base, "submit", "a long story", "--max-tokens", "500", "--task-id", "ctrl-c-1"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = _read_some(proc.stdout, timeout=30)  # the first token
        assert first
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == ExitCode.INTERRUPTED
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        assert "cancelled task ctrl-c-1" in err and "Traceback" not in err
    finally:
        stop(proc)
    with Client(base) as client:
        events = list(client.stream("ctrl-c-1", raise_on_error=False))
    last = events[-1]
    assert last.event == "error" and isinstance(last.data, ErrorEnvelope) and last.data.code == "CANCELLED"
    assert sum(e.event == "token" for e in events) < 500


def test_serve_runs_orchestratord_in_the_foreground(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "mock.yaml"  # the embedded default would load a real model; the CLI is the point here
    config.write_text("pools:\n  - id: default\n    engine: mock\n")
    proc = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--config", str(config)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(proc, port)
        caps = run_cli("--base-url", f"http://127.0.0.1:{port}", "capabilities", "--json")
        assert json.loads(caps.stdout)["pools"][0]["id"] == "default"
        proc.send_signal(signal.SIGINT)  # to the CLI only: it must stop its orchestratord
        assert proc.wait(timeout=30) == ExitCode.INTERRUPTED
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            gone = run_cli("--base-url", f"http://127.0.0.1:{port}", "status")
            if gone.returncode == ExitCode.CONNECT:
                break
            time.sleep(0.2)
        assert gone.returncode == ExitCode.CONNECT
    finally:
        stop(proc)
