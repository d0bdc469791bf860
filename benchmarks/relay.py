"""Token relay: the mock engine read directly vs through orchestratord, at fixed per-stream rates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import HOST, PYTHON, Cpus, free_port, run_json, running, venv_tool

FIRST_TOKEN_MS = 5.0


@dataclass(frozen=True)
class RelayParams:
    streams: int = 32
    tokens: int = 2000
    rates: tuple[float, ...] = (1000.0, 2000.0, 3000.0)


def orchestratord_config(engine_url: str, rate: float, streams: int) -> dict[str, Any]:
    return {
        "server": {"host": HOST},
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


def run_rate(rate: float, p: RelayParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
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
    with running(
        f"mock-engine-{int(rate)}", mock_argv, cpu=cpus.load, log_dir=tmp, ready_url=f"{engine_url}/health"
    ) as mock:
        direct = _clients("direct", engine_url, p, rate, cpus, tmp, {"mock_engine": mock.pid})
        port = free_port()
        config = tmp / f"relay-{int(rate)}.yaml"
        config.write_text(yaml.safe_dump(orchestratord_config(engine_url, rate, p.streams)))
        argv = [
            venv_tool("orchestratord"),
            f"--config={config}",
            f"--port={port}",
            f"--data-dir={tmp / 'data-relay'}",
        ]
        base = f"http://{HOST}:{port}"
        with running(
            f"orchestratord-relay-{int(rate)}", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz"
        ) as orch:
            through = _clients("orch", base, p, rate, cpus, tmp, {"orchestratord": orch.pid, "mock_engine": mock.pid})
    offered = rate * p.streams
    notes: list[str] = []
    for name, r in (("direct", direct), ("through", through)):
        if r["incomplete_streams"] or r["errors"]:
            notes.append(f"{name}: {r['incomplete_streams']} incomplete streams; errors {r['errors']}")
    if direct["tokens_per_s"] < 0.9 * offered:
        notes.append(
            f"direct delivered {direct['tokens_per_s']:.0f} of {offered:.0f} tokens/s offered: the mock engine and "
            "clients (sharing one core) fall behind at this rate"
        )
    return {
        "rate_per_stream": rate,
        "offered_tokens_per_s": offered,
        "direct": direct,
        "through": through,
        "ratio_tokens_per_s": round(through["tokens_per_s"] / direct["tokens_per_s"], 3)
        if direct["tokens_per_s"]
        else float("nan"),
        "added_p50_ms": round(through["latency_p50_ms"] - direct["latency_p50_ms"], 3),
        "added_p99_ms": round(through["latency_p99_ms"] - direct["latency_p99_ms"], 3),
        "notes": notes,
    }


def run(p: RelayParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    return {
        "setup": (
            f"{p.streams} concurrent streams x {p.tokens} tokens; mock engine over HTTP (llama.cpp SSE format, "
            f"--stamp-tokens, first token {FIRST_TOKEN_MS:g} ms) on the load CPU with the clients; orchestratord "
            "relays via its llama.cpp adapter (pool endpoint -> mock engine)"
        ),
        "params": {"streams": p.streams, "tokens": p.tokens, "rates": list(p.rates)},
        "steps": [run_rate(rate, p, cpus, tmp) for rate in p.rates],
    }
