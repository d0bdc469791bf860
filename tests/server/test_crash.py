"""Durable tasks: a real orchestratord killed with SIGKILL at random points under load.

Bounded: a fixed seed picks the kill points; three kills, at most 200 submissions per round, every
wait has a deadline; everything runs on 127.0.0.1 and every process is stopped by its pid.
After the last restart, every task that got a ``202`` must end with ``end`` or a typed, retriable
``error``, in one event log with no id twice and no token index twice; a stream read across a kill
with ``Last-Event-ID`` continues exactly where it left off; and the session's budget counts exactly
the tokens its tasks delivered (a crash never resets it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import SseEvent, free_port, parse_sse

pytestmark = pytest.mark.subprocess

SEED = 20_241_202
KILLS = 3
SUBMISSIONS_PER_ROUND = 200
SESSION = "crash-session"

CONFIG = """
server: {heartbeat_s: 0.2, metrics_interval_s: 0.05}
sessions: {ttl_s: 600}
pools:
  - id: default
    engine: mock
    slots: 4
    max_tokens: 64
    queue: {capacity: 10000}
    mock: {tokens_per_s: 800, first_token_ms: 5, slots: 4}
"""


class Server:
    """One orchestratord process on a data dir; started, then killed or stopped by its pid."""

    def __init__(self, config: Path, data_dir: Path, log: Path) -> None:
        self.config, self.data_dir, self.log = config, data_dir, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "llama_orch.server", "--config", str(self.config), "--port", str(port),
                 "--data-dir", str(self.data_dir)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def start(self) -> None:
        port = free_port()
        self.proc = self._spawn(port)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"orchestratord exited: {self.log.read_text()[-2000:]}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError("orchestratord did not come up within 60 s")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def submit_load(
    http: aiohttp.ClientSession,
    base: str,
    rng: random.Random,
    admitted: list[str],
    in_session: set[str],
    unanswered: list[str],
) -> None:
    """Submit until the round's budget is used or the server dies; keep the ids that got a 202, and
    those whose answer the kill cut off (the task may or may not have been journaled)."""
    round_ = len(admitted) + len(unanswered)

    async def one(n: int) -> None:
        task_id = f"crash-{round_}-{n}"
        body: dict[str, Any] = {
            "task_id": task_id,
            "prompt": f"crash {n} {rng.random()}",
            "max_tokens": rng.randint(4, 48),
        }
        if n % 3 == 0:
            body["session_id"] = SESSION
            body["budget"] = {"tokens": 1_000_000}
            in_session.add(task_id)
        if n % 5 == 0:
            body["priority"] = "batch"
        async with http.post(f"{base}/v1/tasks", json=body) as resp:
            answer = await resp.json()
            assert resp.status == 202, answer  # a live server never refuses this load
            admitted.append(answer["task_id"])
            assert answer["task_id"] == task_id

    async def worker(w: int) -> None:
        for n in range(w, SUBMISSIONS_PER_ROUND, 8):
            try:
                await one(n)
            except (TimeoutError, aiohttp.ClientError):
                unanswered.append(f"crash-{round_}-{n}")
                return  # the server was killed under us: this submission got no 202
            await asyncio.sleep(rng.random() * 0.03)

    await asyncio.gather(*(worker(w) for w in range(8)))


async def read_some(http: aiohttp.ClientSession, base: str, task_id: str, seen: list[SseEvent]) -> None:
    """Read a stream until it is cut (the kill) or ends; keep what arrived."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        async with http.get(f"{base}/v1/tasks/{task_id}/stream") as resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                complete, _, buffer = buffer.rpartition(b"\n\n")
                if complete:
                    seen.extend(parse_sse(complete.decode() + "\n\n"))


async def read_all(http: aiohttp.ClientSession, base: str, task_id: str, last_id: int = 0) -> list[SseEvent]:
    headers = {"Last-Event-ID": str(last_id)} if last_id else {}
    async with http.get(f"{base}/v1/tasks/{task_id}/stream", headers=headers) as resp:
        assert resp.status == 200, f"task {task_id}: {resp.status} {await resp.text()}"
        return parse_sse(await resp.text())


def check_log(task_id: str, events: list[SseEvent]) -> tuple[str, int]:
    """One task's whole log: ids 1..n, token indices 0..k-1, exactly one terminal event, last."""
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1)), task_id
    tokens = [e.data["i"] for e in events if e.event == "token"]
    assert tokens == list(range(len(tokens))), f"{task_id}: token indices {tokens}"
    terminal = [e for e in events if e.event in ("end", "error")]
    assert len(terminal) == 1 and terminal[0] is events[-1], f"{task_id}: {[e.event for e in events]}"
    last = terminal[0]
    if last.event == "end":
        assert last.data["tokens_out"] == len(tokens)
    else:
        assert last.data["code"] == "ORCHESTRATOR_RESTARTED" and last.data["retriable"] is True, last.data
    return last.event, len(tokens)


async def test_sigkill_at_random_points_loses_no_admitted_task(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    config = tmp_path / "orchestratord.yaml"
    config.write_text(CONFIG)
    server = Server(config, tmp_path / "data", tmp_path / "orchestratord.log")
    admitted: list[str] = []
    in_session: set[str] = set()
    unanswered: list[str] = []
    cut_streams: list[tuple[str, list[SseEvent]]] = []
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(KILLS):
                await server.start()
                load = asyncio.create_task(submit_load(http, server.base, rng, admitted, in_session, unanswered))
                readers: list[asyncio.Task[None]] = []
                await asyncio.sleep(0.05 + rng.random() * 0.1)
                for task_id in admitted[-3:]:
                    seen: list[SseEvent] = []
                    cut_streams.append((task_id, seen))
                    readers.append(asyncio.create_task(read_some(http, server.base, task_id, seen)))
                await asyncio.sleep(rng.random() * 0.6)  # the random kill point
                server.kill()
                await asyncio.wait_for(asyncio.gather(load, *readers), 30)
            await server.start()
            assert len(admitted) == len(set(admitted)) > 50
            logs: dict[str, list[SseEvent]] = {}
            for task_id in admitted:  # streams wait for queued tasks to run, then end
                logs[task_id] = await asyncio.wait_for(read_all(http, server.base, task_id), 60)
            outcomes = {task_id: check_log(task_id, events) for task_id, events in logs.items()}
            # A submission cut off by a kill was either journaled (then it runs like any other) or not.
            journaled_unanswered = 0
            for task_id in unanswered:
                async with http.get(f"{server.base}/v1/tasks/{task_id}/stream") as resp:
                    if resp.status == 404:
                        continue
                    assert resp.status == 200
                    outcomes[task_id] = check_log(task_id, parse_sse(await resp.text()))
                    journaled_unanswered += 1
            # A stream cut by a kill continues after the restart exactly where it was.
            assert any(seen for _, seen in cut_streams)
            for task_id, seen in cut_streams:
                if seen:
                    last_id = int(seen[-1].id or 0)
                    rest = await read_all(http, server.base, task_id, last_id)
                    joined = [(e.id, e.event, e.data) for e in seen + rest]
                    assert joined == [(e.id, e.event, e.data) for e in logs[task_id]], task_id
            async with http.get(f"{server.base}/v1/sessions/{SESSION}") as resp:
                session = await resp.json()
            delivered = sum(tokens for task_id, (_, tokens) in outcomes.items() if task_id in in_session)
            assert session["budget"]["tokens_used"] == delivered
            assert session["budget"]["tokens_reserved"] == 0
            ends = sum(1 for task_id in admitted if outcomes[task_id][0] == "end")
            print(  # the numbers behind the assertions (pytest -s)
                f"\n{len(admitted)} tasks admitted over {KILLS} SIGKILLs: {ends} ended, "
                f"{len(admitted) - ends} ORCHESTRATOR_RESTARTED; {len(unanswered)} submissions cut by a kill, "
                f"{journaled_unanswered} of them journaled; session budget {delivered} tokens"
            )
    finally:
        server.stop()
