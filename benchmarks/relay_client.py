"""Token-relay clients: N concurrent streams, each token's latency from the engine's stamp.

The mock engine runs with ``--stamp-tokens``: every token's text is its emission wall time
(``time.time_ns()``) and a space. A client takes the wall time once per network read and, for
each complete SSE frame in it, subtracts the stamp. Parsing is a single regular expression over
the bytes; no JSON is decoded per token.

Modes: ``direct`` POSTs the engine's ``/completion`` (stream true); ``orch`` POSTs
``/v1/tasks`` to orchestratord and reads ``/v1/tasks/{id}/stream``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._common import cpu_seconds, percentile, sched_seconds

TAIL_TOKENS = 50
"""The last tokens of each stream, reported apart (tasks end together: their end work lands there)."""

STAMP = re.compile(rb'"(\d{16,20}) "')
PROMPT = "Relay benchmark: write a long story about a queue that never fills."


@dataclass
class StreamStats:
    tokens: int = 0
    first: float = 0.0
    last: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    error: str | None = None


async def _consume(resp: aiohttp.ClientResponse, stats: StreamStats) -> None:
    buf = b""
    lat = stats.latencies_ns
    perf = time.perf_counter
    now_ns = time.time_ns
    async for chunk in resp.content.iter_any():
        now = now_ns()
        buf += chunk
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            continue
        complete, buf = buf[:cut], buf[cut + 2 :]
        n = 0
        for m in STAMP.finditer(complete):
            lat.append(now - int(m.group(1)))
            n += 1
        if n:
            t = perf()
            if not stats.tokens:
                stats.first = t
            stats.last = t
            stats.tokens += n


async def _direct(session: aiohttp.ClientSession, base: str, tokens: int, seed: int, stats: StreamStats) -> None:
    payload = {"prompt": PROMPT, "n_predict": tokens, "seed": seed, "stream": True}
    async with session.post(f"{base}/completion", json=payload) as resp:
        if resp.status != 200:
            stats.error = f"engine answered {resp.status}: {(await resp.text())[:200]}"
            return
        await _consume(resp, stats)


async def _orch(session: aiohttp.ClientSession, base: str, tokens: int, seed: int, stats: StreamStats) -> None:
    payload = {"prompt": PROMPT, "max_tokens": tokens, "seed": seed, "priority": "interactive"}
    async with session.post(f"{base}/v1/tasks", json=payload) as resp:
        if resp.status != 202:
            stats.error = f"orchestratord answered {resp.status}: {(await resp.text())[:200]}"
            return
        task_id = (await resp.json())["task_id"]
    async with session.get(f"{base}/v1/tasks/{task_id}/stream") as resp:
        if resp.status != 200:
            stats.error = f"stream answered {resp.status}"
            return
        await _consume(resp, stats)


async def run(
    mode: str, base: str, streams: int, tokens: int, timeout_s: float, watch: dict[str, int], dump: Path | None = None
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    stats = [StreamStats() for _ in range(streams)]
    one = _direct if mode == "direct" else _orch
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        cpu0 = {name: cpu_seconds(pid) for name, pid in watch.items()}
        wait0 = {name: sched_seconds(pid)[1] for name, pid in watch.items()}
        cpu0["clients"] = time.process_time()
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(
            *(one(session, base, tokens, 1000 + i, s) for i, s in enumerate(stats)), return_exceptions=True
        )
        wall = time.perf_counter() - t0
        cpu1 = {name: cpu_seconds(pid) for name, pid in watch.items()}
        wait1 = {name: sched_seconds(pid)[1] for name, pid in watch.items()}
        cpu1["clients"] = time.process_time()
    for s, outcome in zip(stats, outcomes, strict=True):
        if isinstance(outcome, BaseException) and s.error is None:
            s.error = f"{type(outcome).__name__}: {outcome}"
    got = [s for s in stats if s.tokens]
    total = sum(s.tokens for s in stats)
    window = max(s.last for s in got) - min(s.first for s in got) if got else float("nan")
    lat = sorted(x for s in stats for x in s.latencies_ns)
    if dump is not None:
        await asyncio.to_thread(dump.write_text, json.dumps([s.latencies_ns for s in stats]))
    # Where the tail is: the last 50 tokens of every stream (when tasks end, together) vs the rest.
    tail = sorted(x for s in stats for x in s.latencies_ns[-TAIL_TOKENS:])
    body = sorted(x for s in stats for x in s.latencies_ns[:-TAIL_TOKENS])
    errors = [s.error for s in stats if s.error]
    short = sum(1 for s in stats if s.tokens != tokens)
    return {
        "mode": mode,
        "streams": streams,
        "tokens_per_stream": tokens,
        "tokens": total,
        "incomplete_streams": short,
        "errors": errors[:5],
        "wall_s": round(wall, 3),
        "window_s": round(window, 3),
        "tokens_per_s": round(total / window, 1) if got and window > 0 else 0.0,
        "latency_p50_ms": round(percentile(lat, 50) / 1e6, 3),
        "latency_p99_ms": round(percentile(lat, 99) / 1e6, 3),
        "latency_max_ms": round(lat[-1] / 1e6, 3) if lat else float("nan"),
        "latency_p99_ms_last_50": round(percentile(tail, 99) / 1e6, 3),
        "latency_p99_ms_before_last_50": round(percentile(body, 99) / 1e6, 3),
        "samples": len(lat),
        "cpu_pct": {name: round(100 * (cpu1[name] - cpu0[name]) / wall, 1) for name in cpu0},
        # Time each watched process's main thread was runnable but waited for a CPU (other work on the machine).
        "cpu_wait_pct": {name: round(100 * (wait1[name] - wait0[name]) / wall, 1) for name in wait0},
        "cpu_us_per_token": {name: round(1e6 * (cpu1[name] - cpu0[name]) / max(1, total), 2) for name in cpu0},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="relay_client", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["direct", "orch"], required=True)
    parser.add_argument("--base", required=True, help="engine or orchestratord base URL")
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--watch", action="append", default=[], metavar="NAME=PID", help="report this CPU use")
    parser.add_argument("--dump", type=Path, help="write every stream's per-token latencies (ns) here as JSON")
    args = parser.parse_args(argv)
    watch = {name: int(pid) for name, _, pid in (w.partition("=") for w in args.watch)}
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.mode, args.base, args.streams, args.tokens, args.timeout, watch, args.dump))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
