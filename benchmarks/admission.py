"""Admission throughput and latency: orchestratord vs a bare Starlette + uvicorn baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import baseline_app
from benchmarks._common import HOST, PYTHON, Cpus, admission_body, free_port, run_json, running, venv_tool

QUEUE_CAPACITY = 1_000_000
SETUP_NOTE = (
    "orchestratord: one in-process mock pool, 1 slot whose first token comes after 1 h, queue capacity "
    f"{QUEUE_CAPACITY:,}: every admitted task stays queued (the queue never fills, no task runs)"
)


@dataclass(frozen=True)
class AdmissionParams:
    concurrency: int = 64
    warmup_s: float = 3.0
    duration_s: float = 6.0
    max_requests: int = 500_000
    client: str = "raw"


BUDGET_SESSION = "bench-session"


def orchestratord_config(*, budgets: bool = False) -> dict[str, Any]:
    """The server under test; with ``budgets`` every session gets a (never exhausted) token and cost budget,
    so each admission reserves against it and the 202 carries X-Budget-* headers."""
    sessions: dict[str, Any] = {}
    if budgets:
        sessions = {"default_budget": {"tokens": 10**15, "cost": 10.0**12}}
    return {
        "server": {"host": HOST},
        "sessions": sessions,
        "pools": [
            {
                "id": "default",
                "engine": "mock",
                "model_ref": "mock:tiny",
                "queue": {"capacity": QUEUE_CAPACITY, "policy": "reject"},
                "first_token_timeout_s": 7200,
                "mock": {"slots": 1, "first_token_ms": 3_600_000, "tokens_per_s": 1},
                "price_per_token": 0.000002,
            }
        ],
    }


def _load(name: str, url: str, server_pid: int, body_file: Path, p: AdmissionParams, cpus: Cpus, tmp: Path) -> Any:
    argv = [
        PYTHON,
        "-m",
        "benchmarks.loadgen",
        f"--url={url}",
        f"--body-file={body_file}",
        f"--concurrency={p.concurrency}",
        f"--warmup={p.warmup_s}",
        f"--duration={p.duration_s}",
        f"--max-requests={p.max_requests}",
        f"--server-pid={server_pid}",
        f"--client={p.client}",
    ]
    return run_json(f"loadgen-{name}", argv, cpu=cpus.load, log_dir=tmp, timeout_s=p.warmup_s + p.duration_s + 60)


def run(p: AdmissionParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    body = admission_body()
    body_file = tmp / "admission-body.json"
    body_file.write_bytes(body)
    results: dict[str, Any] = {}

    budget_body = json.loads(body)
    budget_body["session_id"] = BUDGET_SESSION
    budget_body_file = tmp / "admission-body-budget.json"
    budget_body_file.write_bytes(json.dumps(budget_body, separators=(",", ":")).encode())
    for name, budgets, bfile in (("orchestratord", False, body_file), ("budgets_on", True, budget_body_file)):
        port = free_port()
        config = tmp / f"admission-{name}.yaml"
        config.write_text(yaml.safe_dump(orchestratord_config(budgets=budgets)))
        data_dir = tmp / f"data-{name}"
        argv = [venv_tool("orchestratord"), f"--config={config}", f"--port={port}", f"--data-dir={data_dir}"]
        base = f"http://{HOST}:{port}"
        with running(f"orchestratord-{name}", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz") as srv:
            results[name] = _load(name, f"{base}/v1/tasks", srv.pid, bfile, p, cpus, tmp)

    port = free_port()
    argv = [PYTHON, "-m", "benchmarks.baseline_app", f"--port={port}"]
    base = f"http://{HOST}:{port}"
    with running("baseline", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz") as srv:
        results["baseline"] = _load("baseline", f"{base}/v1/tasks", srv.pid, body_file, p, cpus, tmp)

    orch, bl, bud = results["orchestratord"], results["baseline"], results["budgets_on"]
    ratio = orch["tasks_per_s"] / bl["tasks_per_s"] if bl["tasks_per_s"] else float("nan")
    budget_ratio = bud["tasks_per_s"] / orch["tasks_per_s"] if orch["tasks_per_s"] else float("nan")
    notes: list[str] = []
    for name, r in results.items():
        if r["loadgen_cpu_pct"] >= 90:
            notes.append(
                f"{name}: the load generator used {r['loadgen_cpu_pct']:.0f}% of its core: it, not the server "
                f"({r['server_cpu_pct']:.0f}%), may be the limit"
            )
        elif r["server_cpu_pct"] < 90:
            notes.append(
                f"{name} used only {r['server_cpu_pct']:.0f}% of its core while measured (waited for a CPU "
                f"{r['server_cpu_wait_pct']:.0f}% of the time): other work on the machine; numbers are noisy"
            )
        non_202 = {k: v for k, v in r["statuses"].items() if k != "202"}
        if non_202 or r["errors"]:
            notes.append(f"{name}: non-202 answers {non_202}, transport errors {r['errors']}")
    cpu_o, cpu_b = orch["server_cpu_us_per_request"], bl["server_cpu_us_per_request"]
    cpu_ratio = cpu_b / cpu_o if cpu_o else float("nan")
    return {
        "setup": SETUP_NOTE,
        "baseline_server": f"Starlette + uvicorn, http={baseline_app.http_impl()}, uvloop, 1 worker",
        "params": {
            "concurrency": p.concurrency,
            "warmup_s": p.warmup_s,
            "duration_s": p.duration_s,
            "max_requests": p.max_requests,
            "body_bytes": len(body),
            "client": p.client,
        },
        "orchestratord": orch,
        "budgets_on": bud,
        "baseline": bl,
        "ratio": round(ratio, 3),
        "budgets_on_ratio": round(budget_ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "target": {"ratio_min": 0.7, "p99_ms_max": 20.0},
        "meets_target": bool(ratio >= 0.7 and orch["p99_ms"] < 20.0),
        "notes": notes,
    }
