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
    f"{QUEUE_CAPACITY:,}: every admitted task stays queued (the queue never fills, no task runs); journal on "
    "(SQLite in a fresh data dir, each 202 after its group commit) unless named off"
)


@dataclass(frozen=True)
class AdmissionParams:
    concurrency: int = 64
    warmup_s: float = 3.0
    duration_s: float = 6.0
    max_requests: int = 500_000
    client: str = "raw"
    rounds: int = 3


BUDGET_SESSION = "bench-session"
TARGET_RATIO = 0.8
"""orchestratord (journal on) tasks/s over the bare Starlette + uvicorn (httptools) baseline's (issue 12)."""
TARGET_P99_MS = 20.0
TARGET_JOURNAL_RATIO = 0.85
"""Journal on over journal off."""
TARGET_BUDGETS_RATIO = 0.9
"""Budgets on over budgets off (both with the journal)."""


def orchestratord_config(*, budgets: bool = False, journal: bool = True) -> dict[str, Any]:
    """The server under test; with ``budgets`` every session gets a (never exhausted) token and cost budget,
    so each admission reserves against it and the 202 carries X-Budget-* headers. With ``journal`` (the
    default, as in production with a data dir) every admitted task is journaled before its 202."""
    sessions: dict[str, Any] = {}
    if budgets:
        sessions = {"default_budget": {"tokens": 10**15, "cost": 10.0**12}}
    return {
        "server": {"host": HOST},
        "journal": {"enabled": journal},
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


VARIANTS = ("orchestratord", "journal_off", "budgets_on", "baseline")
"""``orchestratord``: the headline (journal on, budgets off); ``journal_off``: the same without the
journal; ``budgets_on``: journal on, one session with a budget, each admission reserving against it;
``baseline``: bare Starlette + uvicorn."""


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return float("nan")
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def _measure(name: str, round_no: int, files: dict[str, Path], p: AdmissionParams, cpus: Cpus, tmp: Path) -> Any:
    port = free_port()
    base = f"http://{HOST}:{port}"
    tag = f"{name}-{round_no}"
    if name == "baseline":
        argv = [PYTHON, "-m", "benchmarks.baseline_app", f"--port={port}"]
        body = files["plain"]
    else:
        config = tmp / f"admission-{name}.yaml"
        config.write_text(
            yaml.safe_dump(orchestratord_config(budgets=name == "budgets_on", journal=name != "journal_off"))
        )
        data_dir = tmp / f"data-{tag}"  # a fresh journal each round
        argv = [venv_tool("orchestratord"), f"--config={config}", f"--port={port}", f"--data-dir={data_dir}"]
        body = files["budget" if name == "budgets_on" else "plain"]
    with running(f"admission-{tag}", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz") as srv:
        return _load(tag, f"{base}/v1/tasks", srv.pid, body, p, cpus, tmp)


def run(p: AdmissionParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    body = admission_body()
    files = {"plain": tmp / "admission-body.json", "budget": tmp / "admission-body-budget.json"}
    files["plain"].write_bytes(body)
    budget_body = json.loads(body)
    budget_body["session_id"] = BUDGET_SESSION
    files["budget"].write_bytes(json.dumps(budget_body, separators=(",", ":")).encode())

    # Rounds alternate the variants (orchestratord, journal_off, budgets_on, baseline, orchestratord, …)
    # so that drifting load on a shared machine spreads over all of them; each reports its median.
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for round_no in range(p.rounds):
        for name in VARIANTS:
            runs[name].append(_measure(name, round_no, files, p, cpus, tmp))

    results = {name: sorted(rs, key=lambda r: r["tasks_per_s"])[len(rs) // 2] for name, rs in runs.items()}
    med = {
        name: {
            key: round(_median([r[key] for r in rs]), 3)
            for key in ("tasks_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_request")
        }
        for name, rs in runs.items()
    }
    orch, bl, off, bud = (med[n] for n in ("orchestratord", "baseline", "journal_off", "budgets_on"))
    ratio = _ratio(orch["tasks_per_s"], bl["tasks_per_s"])
    journal_ratio = _ratio(orch["tasks_per_s"], off["tasks_per_s"])
    budget_ratio = _ratio(bud["tasks_per_s"], orch["tasks_per_s"])
    # Server CPU per admitted task: robust to other work on the machine (the server does not always
    # get a whole core there); what the tasks/s ratio would be if both sides were purely CPU-bound.
    cpu_ratio = _ratio(bl["server_cpu_us_per_request"], orch["server_cpu_us_per_request"])
    journal_cpu_ratio = _ratio(off["server_cpu_us_per_request"], orch["server_cpu_us_per_request"])
    budget_cpu_ratio = _ratio(orch["server_cpu_us_per_request"], bud["server_cpu_us_per_request"])
    notes: list[str] = []
    for name, rs in runs.items():
        for round_no, r in enumerate(rs):
            where = f"{name} (round {round_no + 1})"
            if r["loadgen_cpu_pct"] >= 90:
                notes.append(
                    f"{where}: the load generator used {r['loadgen_cpu_pct']:.0f}% of its core: it, not the server "
                    f"({r['server_cpu_pct']:.0f}%), may be the limit"
                )
            elif r["server_cpu_pct"] < 90:
                notes.append(
                    f"{where} used only {r['server_cpu_pct']:.0f}% of its core while measured (waited for a CPU "
                    f"{r['server_cpu_wait_pct']:.0f}% of the time): other work on the machine; numbers are noisy"
                )
            non_202 = {k: v for k, v in r["statuses"].items() if k != "202"}
            if non_202 or r["errors"]:
                notes.append(f"{where}: non-202 answers {non_202}, transport errors {r['errors']}")
    targets = {
        "ratio_min": TARGET_RATIO,
        "p99_ms_max": TARGET_P99_MS,
        "journal_ratio_min": TARGET_JOURNAL_RATIO,
        "budgets_ratio_min": TARGET_BUDGETS_RATIO,
    }
    meets = {
        "ratio": bool(ratio >= TARGET_RATIO and orch["p99_ms"] < TARGET_P99_MS),
        "journal": bool(journal_ratio >= TARGET_JOURNAL_RATIO),
        "budgets": bool(budget_ratio >= TARGET_BUDGETS_RATIO),
    }
    return {
        "setup": SETUP_NOTE,
        "baseline_server": f"Starlette + uvicorn, http={baseline_app.http_impl()}, uvloop, 1 worker",
        "params": {
            "concurrency": p.concurrency,
            "warmup_s": p.warmup_s,
            "duration_s": p.duration_s,
            "max_requests": p.max_requests,
            "rounds": p.rounds,
            "body_bytes": len(body),
            "client": p.client,
        },
        **results,
        "median": med,
        "tasks_per_s_all_rounds": {name: [r["tasks_per_s"] for r in rs] for name, rs in runs.items()},
        "p99_ms_all_rounds": {name: [r["p99_ms"] for r in rs] for name, rs in runs.items()},
        "cpu_us_per_task_all_rounds": {name: [r["server_cpu_us_per_request"] for r in rs] for name, rs in runs.items()},
        "server_cpu_pct_all_rounds": {name: [r["server_cpu_pct"] for r in rs] for name, rs in runs.items()},
        "ratio": ratio,
        "journal_ratio": journal_ratio,
        "budgets_on_ratio": budget_ratio,
        "cpu_ratio": cpu_ratio,
        "journal_cpu_ratio": journal_cpu_ratio,
        "budgets_cpu_ratio": budget_cpu_ratio,
        "target": targets,
        "meets": meets,
        "meets_target": all(meets.values()),
        "notes": notes,
    }
