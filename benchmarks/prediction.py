"""Start-time prediction accuracy (OC-CLI-3202) under open-loop Poisson arrivals.

One orchestratord with one in-process mock pool. Tasks arrive as a Poisson process at a fixed
fraction of the pool's capacity (``slots / mean service time``), with ``max_tokens`` drawn
uniformly. For every task the ``started`` SSE event carries both the prediction made at admission
(``predicted_start_ms``) and the wait the server measured (``waited_ms``); the client reads the
stream only up to that event.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks._common import HOST, Cpus, free_port, percentile, running, venv_tool

MIN_WAIT_MS = 10


@dataclass(frozen=True)
class PredictionParams:
    tasks: int = 300
    slots: int = 4
    tokens_per_s: float = 200.0
    first_token_ms: float = 20.0
    min_tokens: int = 20
    max_tokens: int = 200
    load: float = 0.8
    seed: int = 3202

    @property
    def mean_service_ms(self) -> float:
        return self.first_token_ms + (self.min_tokens + self.max_tokens) / 2 / self.tokens_per_s * 1000

    @property
    def capacity_per_s(self) -> float:
        return self.slots / (self.mean_service_ms / 1000)

    @property
    def arrival_rate_per_s(self) -> float:
        return self.load * self.capacity_per_s


def orchestratord_config(p: PredictionParams) -> dict[str, Any]:
    return {
        "server": {"host": HOST},
        "pools": [
            {
                "id": "default",
                "engine": "mock",
                "model_ref": "mock:tiny",
                "queue": {"capacity": 100_000},
                "mock": {"slots": p.slots, "tokens_per_s": p.tokens_per_s, "first_token_ms": p.first_token_ms},
            }
        ],
    }


@dataclass
class Outcome:
    max_tokens: int
    predicted_ms: int
    waited_ms: int
    queue_position: int


async def _one(session: aiohttp.ClientSession, base: str, at: float, max_tokens: int, seed: int) -> Outcome | str:
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    body = {"prompt": f"prediction benchmark task {seed}", "max_tokens": max_tokens, "seed": seed}
    async with session.post(f"{base}/v1/tasks", json=body) as resp:
        if resp.status != 202:
            return f"admission answered {resp.status}: {(await resp.text())[:200]}"
        task_id = (await resp.json())["task_id"]
    async with session.get(f"{base}/v1/tasks/{task_id}/stream") as resp:
        event = ""
        async for raw in resp.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:") and event in ("started", "error"):
                data = json.loads(line[5:])
                if event == "error":
                    return f"task failed: {data.get('code')}"
                return Outcome(max_tokens, data["predicted_start_ms"], data["waited_ms"], data["queue_position"])
    return "stream ended without a started event"


async def _drive(base: str, p: PredictionParams) -> tuple[list[Outcome], list[str], float]:
    rng = random.Random(p.seed)
    gaps = [rng.expovariate(p.arrival_rate_per_s) for _ in range(p.tasks)]
    sizes = [rng.randint(p.min_tokens, p.max_tokens) for _ in range(p.tasks)]
    horizon = sum(gaps)
    timeout = aiohttp.ClientTimeout(total=horizon + 120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        t0 = time.perf_counter() + 0.2
        at, jobs = t0, []
        for i, (gap, size) in enumerate(zip(gaps, sizes, strict=True)):
            at += gap
            jobs.append(_one(session, base, at, size, i))
        results = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), horizon + 150)
    outcomes = [r for r in results if isinstance(r, Outcome)]
    errors = [r if isinstance(r, str) else f"{type(r).__name__}: {r}" for r in results if not isinstance(r, Outcome)]
    return outcomes, errors, horizon


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    abs_ms = sorted(abs(o.predicted_ms - o.waited_ms) for o in outcomes)
    waited = [o for o in outcomes if o.waited_ms >= MIN_WAIT_MS]
    pct = sorted(100 * abs(o.predicted_ms - o.waited_ms) / o.waited_ms for o in waited)
    signed = [o.predicted_ms - o.waited_ms for o in waited]
    return {
        "tasks_measured": len(outcomes),
        "tasks_waited_ge_10ms": len(waited),
        "median_abs_err_pct": round(percentile(pct, 50), 1),
        "p90_abs_err_pct": round(percentile(pct, 90), 1),
        "median_signed_err_ms_waited": round(statistics.median(signed), 1) if signed else float("nan"),
        "median_abs_err_ms_all": round(percentile(abs_ms, 50), 1),
        "p90_abs_err_ms_all": round(percentile(abs_ms, 90), 1),
        "median_waited_ms": round(statistics.median(o.waited_ms for o in outcomes), 1) if outcomes else 0.0,
        "p90_waited_ms": round(percentile(sorted(o.waited_ms for o in outcomes), 90), 1),
        "max_waited_ms": max((o.waited_ms for o in outcomes), default=0),
    }


def run(p: PredictionParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    port = free_port()
    config = tmp / "prediction.yaml"
    config.write_text(yaml.safe_dump(orchestratord_config(p)))
    argv = [venv_tool("orchestratord"), f"--config={config}", f"--port={port}", f"--data-dir={tmp / 'data-pred'}"]
    base = f"http://{HOST}:{port}"
    with running("orchestratord-prediction", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz"):
        outcomes, errors, horizon = asyncio.run(_drive(base, p))
    summary = summarize(outcomes)
    median = summary["median_abs_err_pct"]
    return {
        "setup": (
            f"one in-process mock pool: {p.slots} slots, {p.tokens_per_s:g} tokens/s, first token "
            f"{p.first_token_ms:g} ms; {p.tasks} tasks, max_tokens uniform {p.min_tokens}..{p.max_tokens}; "
            f"Poisson arrivals at {p.arrival_rate_per_s:.2f}/s = {p.load:.0%} of capacity "
            f"{p.capacity_per_s:.2f}/s (mean service {p.mean_service_ms:.0f} ms)"
        ),
        "params": {
            "tasks": p.tasks,
            "slots": p.slots,
            "tokens_per_s": p.tokens_per_s,
            "first_token_ms": p.first_token_ms,
            "max_tokens_range": [p.min_tokens, p.max_tokens],
            "load": p.load,
            "arrival_rate_per_s": round(p.arrival_rate_per_s, 3),
            "capacity_per_s": round(p.capacity_per_s, 3),
            "arrival_horizon_s": round(horizon, 1),
            "seed": p.seed,
        },
        **summary,
        "errors": errors[:5],
        "error_count": len(errors),
        "target": {"median_abs_err_pct_max": 15.0},
        "meets_target": bool(summary["tasks_waited_ge_10ms"] > 0 and median <= 15.0),
    }
