"""KV reuse: a session's second turn, warm (``kv_hint`` reuse) vs cold, on the real engine.

``python -m benchmarks.kv_reuse [--quick] [--rounds N] [--out PATH]`` (also the ``kv_reuse``
section of ``scripts/bench``).

orchestratord (a process) runs one managed llama.cpp pool on the embedded Gemma 3 270M (its own
llama-server, 2 slots). Each round gives two sessions the same long first turn (~700 prompt
tokens, one output token), then the same second turn (the first turn's prompt plus a question):

- **warm**: the second turn with no hint (``kv_hint`` reuse is the default): orchestratord pins it
  to the replica and llama.cpp slot of the first turn with the prompt cache on, so the engine only
  reads the new tokens;
- **cold**: the second turn with ``kv_hint: {mode: cold}``: no placement preference and the prompt
  cache off, so the engine reads the whole prompt again.

Each round's prompt is new (no round finds another's cache) and which path goes first alternates.
TTFT = first token received - ``POST /v1/tasks`` sent. Reported: median TTFT per path, the
**speed-up** cold/warm, and the prompt tokens the engine said it took from its cache
(``cached_tokens`` of the end event) on each path. Bounded in rounds and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._common import HOST, Cpus, free_port, pick_cpus, running, venv_tool, write_result

TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)
WORDS = ("river", "engine", "garden", "signal", "copper", "window", "harbor", "ledger", "canvas", "meadow")


@dataclass(frozen=True)
class KvParams:
    rounds: int = 5
    max_tokens: int = 8
    seconds_cap: float = 240.0


def first_prompt(round_no: int) -> str:
    """~700 tokens of plain text, different in every round."""
    lines = [f"Log of round {round_no}."]
    for i in range(40):
        lines.append(f"Entry {i}: the {WORDS[(i + round_no) % 10]} was checked at {round_no}:{i:02d}.")
    return "\n".join(lines)


async def _turn(http: aiohttp.ClientSession, orch: str, body: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    first: float | None = None
    end: dict[str, Any] = {}
    async with http.post(f"{orch}/v1/tasks", json=body) as resp:
        if resp.status != 202:
            raise RuntimeError(f"orchestratord answered {resp.status}: {await resp.text()}")
        url = (await resp.json())["stream_url"]
    async with http.get(f"{orch}{url}") as resp:
        event = ""
        async for raw in resp.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:") and event == "token" and first is None:
                first = time.perf_counter()
            elif line.startswith(b"data:") and event == "end":
                end = json.loads(line[5:])
            elif line.startswith(b"data:") and event == "error":
                raise RuntimeError(f"task failed: {line[5:].decode()}")
    if first is None:
        raise RuntimeError("the task ended without a token")
    return {"ttft_ms": (first - began) * 1000, "cached": end.get("cached_tokens"), "prompt": end.get("prompt_tokens")}


async def _measure(orch: str, p: KvParams) -> dict[str, Any]:
    deadline = time.monotonic() + p.seconds_cap
    warm: list[dict[str, Any]] = []
    cold: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        for round_no in range(p.rounds):
            if time.monotonic() > deadline:
                break
            prompt = first_prompt(round_no)
            second = prompt + "\nQuestion: which entry mentions the harbor first? Answer:"
            sessions = {"warm": f"kv-warm-{round_no}", "cold": f"kv-cold-{round_no}"}
            for sid in sessions.values():
                await _turn(http, orch, {"prompt": prompt, "max_tokens": 1, "seed": 1, "session_id": sid})
            order = ("warm", "cold") if round_no % 2 == 0 else ("cold", "warm")
            for path in order:
                body: dict[str, Any] = {"prompt": second, "max_tokens": p.max_tokens, "seed": 1,
                                        "session_id": sessions[path]}  # fmt: skip
                if path == "cold":
                    body["kv_hint"] = {"mode": "cold"}
                (warm if path == "warm" else cold).append(await _turn(http, orch, body))
    if not warm or not cold:
        raise RuntimeError("no round finished within the time cap")
    w = statistics.median(s["ttft_ms"] for s in warm)
    c = statistics.median(s["ttft_ms"] for s in cold)
    return {
        "rounds": len(warm),
        "warm": {"ttft_p50_ms": round(w, 1), "cached_p50": statistics.median(s["cached"] or 0 for s in warm),
                 "prompt_tokens": warm[0]["prompt"], "ttft_ms": [round(s["ttft_ms"], 1) for s in warm]},
        "cold": {"ttft_p50_ms": round(c, 1), "cached_p50": statistics.median(s["cached"] or 0 for s in cold),
                 "prompt_tokens": cold[0]["prompt"], "ttft_ms": [round(s["ttft_ms"], 1) for s in cold]},
        "speedup": round(c / w, 2) if w > 0 else None,
    }  # fmt: skip


def run(params: KvParams, cpus: Cpus, log_dir: Path) -> dict[str, Any]:
    port = free_port()
    orch = f"http://{HOST}:{port}"
    threads = 2 if not cpus.pinned else 1
    config = log_dir / "kv-reuse.yaml"
    config.write_text(
        "pools:\n"
        "  - id: bench\n    engine: llamacpp\n    model_ref: embedded:gemma3-270m\n"
        f"    slots: 2\n    ctx_max: 2048\n    threads: {threads}\n"
        "server:\n  metrics_interval_s: 3600\n"
    )
    argv = [venv_tool("orchestratord"), "--config", str(config), "--port", str(port),
            "--data-dir", str(log_dir / "orch-data"), "--log-level", "WARNING"]  # fmt: skip
    with running("orchestratord", argv, cpu=None, log_dir=log_dir, ready_url=f"{orch}/healthz"):
        asyncio.run(_wait_ready(orch))
        result = asyncio.run(_measure(orch, params))
    result["setup"] = (
        f"orchestratord with a managed llama-server (Gemma 3 270M Q4_K_M, {threads} thread(s), 2 slots), "
        f"second turns of {params.max_tokens} tokens, {result['rounds']} rounds"
    )
    return result


async def _wait_ready(orch: str, timeout_s: float = 120.0) -> None:
    """Until the pool's replica is Ready (the managed llama-server loaded its model)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{orch}/v1/replicasets") as resp:
                sets = (await resp.json())["replicasets"]
            if sets and any(r["state"] == "ready" for r in sets[0]["replicas"]):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the pool was not ready within {timeout_s:g} s")


def report(r: dict[str, Any]) -> str:
    w, c = r["warm"], r["cold"]
    return "\n".join(
        [
            "KV REUSE  a session's second turn, warm (same replica and slot, prompt cache) vs cold (kv_hint cold)",
            f"  {r['setup']}",
            f"  TTFT p50 warm {w['ttft_p50_ms']:.1f} ms (cached {w['cached_p50']:.0f} of {w['prompt_tokens']} "
            f"prompt tokens), cold {c['ttft_p50_ms']:.1f} ms (cached {c['cached_p50']:.0f}) -> cold/warm "
            f"{r['speedup']}x; per round warm {w['ttft_ms']}, cold {c['ttft_ms']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kv_reuse", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two rounds")
    parser.add_argument("--rounds", type=int, default=KvParams.rounds)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    params = KvParams(rounds=2 if args.quick else max(1, min(args.rounds, 20)))
    with tempfile.TemporaryDirectory(prefix="llorch-kv-") as tmp:
        result = run(params, pick_cpus(), Path(tmp))
    print(report(result), flush=True)
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
