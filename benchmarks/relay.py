"""Token relay: the mock engine read directly vs through orchestratord, at fixed per-stream rates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import HOST, PYTHON, Cpus, free_port, run_json, running, venv_tool

FIRST_TOKEN_MS = 5.0
HEADLINE_RATE = 1000.0
TARGET_ADDED_P99_MS = 15.0
"""Issue 12: 32 streams x 1,000 tok/s, added p99 below this in the median of 5 runs."""


@dataclass(frozen=True)
class RelayParams:
    streams: int = 32
    tokens: int = 2000
    rates: tuple[float, ...] = (1000.0, 2000.0, 3000.0)
    repeats: int = 5
    """Runs at HEADLINE_RATE (the issue's figure is the median of 5); other rates run once."""
    journal_off: bool = True
    """Also run HEADLINE_RATE ``repeats`` times with the journal off, for comparison."""


def orchestratord_config(engine_url: str, rate: float, streams: int, *, journal: bool = True) -> dict[str, Any]:
    return {
        "server": {"host": HOST},
        "journal": {"enabled": journal},
        "pools": [
            {
                "id": "default",
                "engine": "mock",
                "model_ref": "mock:tiny",
                "endpoint": engine_url,
                "slots": max(64, streams),
                "max_tokens": 1_000_000,
                "queue": {"capacity": 100_000},
                "mock": {"slots": max(64, streams), "tokens_per_s": rate, "first_token_ms": FIRST_TOKEN_MS},
            }
        ],
    }


def _clients(mode: str, base: str, p: RelayParams, rate: float, cpus: Cpus, tmp: Path, watch: dict[str, int]) -> Any:
    timeout = p.tokens / rate + 30
    argv = [
        PYTHON,
        "-m",
        "benchmarks.relay_client",
        f"--mode={mode}",
        f"--base={base}",
        f"--streams={p.streams}",
        f"--tokens={p.tokens}",
        f"--timeout={timeout}",
        *(f"--watch={name}={pid}" for name, pid in watch.items()),
    ]
    return run_json(f"relay-{mode}-{int(rate)}", argv, cpu=cpus.load, log_dir=tmp, timeout_s=timeout + 30)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def run_rate(
    rate: float, p: RelayParams, cpus: Cpus, tmp: Path, repeats: int = 1, *, journal: bool = True
) -> dict[str, Any]:
    """One rate: the mock engine and orchestratord (journal on unless ``journal`` is False) started
    once, then ``repeats`` runs of direct followed by through; the step reports the median run and the spread."""
    engine_port = free_port()
    engine_url = f"http://{HOST}:{engine_port}"
    mock_argv = [
        venv_tool("llama-orch-mock-engine"),
        f"--port={engine_port}",
        f"--tokens-per-s={rate}",
        f"--first-token-ms={FIRST_TOKEN_MS}",
        f"--slots={max(64, p.streams)}",
        "--stamp-tokens",
    ]
    runs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with running(
        f"mock-engine-{int(rate)}", mock_argv, cpu=cpus.load, log_dir=tmp, ready_url=f"{engine_url}/health"
    ) as mock:
        port = free_port()
        tag = f"{int(rate)}{'' if journal else '-journal-off'}"
        config = tmp / f"relay-{tag}.yaml"
        config.write_text(yaml.safe_dump(orchestratord_config(engine_url, rate, p.streams, journal=journal)))
        argv = [
            venv_tool("orchestratord"),
            f"--config={config}",
            f"--port={port}",
            f"--data-dir={tmp / f'data-relay-{tag}'}",
        ]
        base = f"http://{HOST}:{port}"
        with running(
            f"orchestratord-relay-{tag}", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz"
        ) as orch:
            for _ in range(repeats):
                direct = _clients("direct", engine_url, p, rate, cpus, tmp, {"mock_engine": mock.pid})
                watch = {"orchestratord": orch.pid, "mock_engine": mock.pid}
                through = _clients("orch", base, p, rate, cpus, tmp, watch)
                runs.append((direct, through))
    offered = rate * p.streams
    added = [
        {
            "direct_p99_ms": d["latency_p99_ms"],
            "through_p99_ms": t["latency_p99_ms"],
            "added_p50_ms": round(t["latency_p50_ms"] - d["latency_p50_ms"], 3),
            "added_p99_ms": round(t["latency_p99_ms"] - d["latency_p99_ms"], 3),
            "through_tokens_per_s": t["tokens_per_s"],
            "orchestratord_cpu_pct": t["cpu_pct"].get("orchestratord"),
            "orchestratord_cpu_wait_pct": t.get("cpu_wait_pct", {}).get("orchestratord"),
            "orchestratord_cpu_us_per_token": t["cpu_us_per_token"].get("orchestratord"),
        }
        for d, t in runs
    ]
    # The run whose added p99 is the median stands for the step in the table.
    order = sorted(range(len(runs)), key=lambda i: added[i]["added_p99_ms"])
    direct, through = runs[order[len(order) // 2]]
    notes: list[str] = []
    for n, (d, t) in enumerate(runs, 1):
        for name, r in (("direct", d), ("through", t)):
            if r["incomplete_streams"] or r["errors"]:
                notes.append(f"run {n} {name}: {r['incomplete_streams']} incomplete streams; errors {r['errors']}")
        waited = t.get("cpu_wait_pct", {}).get("orchestratord", 0.0)
        if waited >= 20:
            notes.append(
                f"run {n}: orchestratord waited for a CPU {waited:.0f}% of the time (used "
                f"{t['cpu_pct'].get('orchestratord', 0.0):.0f}%): other work on the machine; latency is queueing"
            )
        if d["tokens_per_s"] < 0.9 * offered:
            notes.append(
                f"run {n}: direct delivered {d['tokens_per_s']:.0f} of {offered:.0f} tokens/s offered: the mock "
                "engine and clients (sharing one core) fall behind at this rate"
            )
    p99s = [a["added_p99_ms"] for a in added]
    return {
        "rate_per_stream": rate,
        "journal": journal,
        "offered_tokens_per_s": offered,
        "repeats": repeats,
        "direct": direct,
        "through": through,
        "ratio_tokens_per_s": round(through["tokens_per_s"] / direct["tokens_per_s"], 3)
        if direct["tokens_per_s"]
        else float("nan"),
        "added_p50_ms": round(_median([a["added_p50_ms"] for a in added]), 3),
        "added_p99_ms": round(_median(p99s), 3),
        "added_p99_ms_min": min(p99s),
        "added_p99_ms_max": max(p99s),
        "runs": added,
        "notes": notes,
    }


def run(p: RelayParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    steps = [run_rate(rate, p, cpus, tmp, p.repeats if rate == HEADLINE_RATE else 1) for rate in p.rates]
    headline = next((s for s in steps if s["rate_per_stream"] == HEADLINE_RATE), None)
    if headline is not None and p.journal_off:
        # The same headline runs without the journal: what journaling every token frame costs.
        steps.insert(steps.index(headline) + 1, run_rate(HEADLINE_RATE, p, cpus, tmp, p.repeats, journal=False))
    return {
        "setup": (
            f"{p.streams} concurrent streams x {p.tokens} tokens; mock engine over HTTP (llama.cpp SSE format, "
            f"--stamp-tokens, first token {FIRST_TOKEN_MS:g} ms) on the load CPU with the clients; orchestratord "
            "relays via its llama.cpp adapter (pool endpoint -> mock engine), journal on (a data dir); "
            f"R={HEADLINE_RATE:g} runs {p.repeats} times (median and spread)"
            f"{', and as often with the journal off' if p.journal_off else ''}, other rates once"
        ),
        "params": {
            "streams": p.streams,
            "tokens": p.tokens,
            "rates": list(p.rates),
            "repeats": p.repeats,
            "journal_off": p.journal_off,
        },
        "steps": steps,
        "target": {"added_p99_ms_max": TARGET_ADDED_P99_MS, "rate_per_stream": HEADLINE_RATE},
        "meets_target": bool(headline is not None and headline["added_p99_ms"] < TARGET_ADDED_P99_MS),
    }
