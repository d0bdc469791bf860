"""The `orchestratord` console script as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llama_orch.server.config import config_json_schema
from tests._engine import gemma_model
from tests.conftest import free_port

BIN = Path(sys.executable).parent / "orchestratord"


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 120  # the embedded default loads a real model first
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"orchestratord exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("orchestratord did not become ready within 120 s")


@pytest.fixture
def run_orchestratord(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def _run(*args: str, env: dict[str, str] | None = None) -> int:
        port = free_port()
        proc = subprocess.Popen(
            [str(BIN), "--port", str(port), "--data-dir", str(tmp_path / "data"), *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        _wait_ready(proc, port)
        return port

    yield _run
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _post(port: int, body: dict[str, object]) -> tuple[int, dict[str, object], dict[str, str]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/tasks",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Correlation-Id": "sub-1"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


@pytest.mark.subprocess
@pytest.mark.real_engine
def test_embedded_default_serves_a_task(run_orchestratord, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gemma_model()  # the embedded default is llama.cpp on the embedded Gemma model: skip (CI: fail) without it
    port = run_orchestratord()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/capabilities", timeout=10) as resp:
        pools = json.loads(resp.read())["pools"]
    assert [(p["id"], p["engine"], p["model_ref"]) for p in pools] == [
        ("default", "llamacpp", "embedded:gemma3-270m"),
        ("chat", "llamacpp", "embedded:smollm2-135m"),
    ]
    status, body, headers = _post(
        port, {"prompt": "The capital of France is", "max_tokens": 4, "seed": 1, "model_ref": "embedded:gemma3-270m"}
    )
    assert status == 202 and headers["X-Correlation-Id"] == "sub-1"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{body['stream_url']}", timeout=60) as resp:
        text = resp.read().decode()
    assert 1 <= text.count("event: token") <= 4
    assert "event: end" in text
    assert (tmp_path / "data").is_dir()


@pytest.mark.subprocess
def test_a_missing_engine_leaves_the_pool_unready_with_the_fix(run_orchestratord, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "pools.yaml"
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(64))
    cfg.write_text(
        "pools:\n  - id: gpu\n    engine: llamacpp\n    provision: binary\n"
        f"    engine_binary: {tmp_path / 'llama-server'}\n    model_ref: {model}\n"
    )
    port = run_orchestratord("--config", str(cfg))
    status, body, _ = _post(port, {"prompt": "x", "max_tokens": 2})
    assert (status, body["code"]) == (503, "POOL_UNREADY")
    assert "llama-server not found at" in body["message"] and "scripts/setup" in body["message"]


@pytest.mark.subprocess
def test_config_from_env(run_orchestratord, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "pools.yaml"
    cfg.write_text("pools:\n  - id: only\n    engine: mock\n    model_ref: mock:env\n    max_tokens: 8\n")
    port = run_orchestratord(env={"LLORCH_CONFIG": str(cfg)})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/capabilities", timeout=10) as resp:
        caps = json.loads(resp.read())
    assert [p["id"] for p in caps["pools"]] == ["only"]
    status, body, _ = _post(port, {"prompt": "x", "max_tokens": 9})
    assert (status, body["code"]) == (400, "MAX_TOKENS_EXCEEDED")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("pools: [{id: a, engine: mock, bogus: 1}]\n", "bogus"),
        ("pools: [{id: a}, {id: a}]\n", "duplicate pool ids"),
        ("pools: [\n", "not valid YAML"),
    ],
)
def test_bad_config_exits_2_with_message(tmp_path: Path, content: str, needle: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    proc = subprocess.run([str(BIN), "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert needle in proc.stderr


def test_missing_config_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN), "--config", str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "cannot read config" in proc.stderr


def test_print_config_schema() -> None:
    proc = subprocess.run([str(BIN), "--print-config-schema"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout == config_json_schema()


@pytest.mark.subprocess
def test_demo_streams_one_completion_then_keeps_serving(tmp_path: Path) -> None:
    cfg = tmp_path / "mock.yaml"
    cfg.write_text("pools:\n  - id: default\n    engine: mock\n    mock:\n      tokens_per_s: 500\n")
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "--config", str(cfg), "--port", str(port), "--data-dir", str(tmp_path / "data"), "--demo", "hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # bounded: the process is killed below if this never ends
            lines.append(line)
            if "demo done" in line or "demo failed" in line or len(lines) > 200:
                break
        output = "".join(lines)
        assert "orchestratord: demo on pool 'default' > hi" in output, output
        assert "demo done: 64 tokens" in output, output
        _wait_ready(proc, port)  # still serving after the demo
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
