"""``python -m benchmarks [--quick] [--only admission,relay,gc,prediction] [--out PATH]``.

Runs the benchmarks, prints a table and writes JSON (default ``benchmarks/results/latest.json``).
See ``benchmarks/README.md`` for what each number means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import (
    admission,
    artifacts,
    front_door,
    gc_pauses,
    kv_reuse,
    loop,
    prediction,
    real_engine,
    relay,
    security,
)
from benchmarks._common import ROOT, pick_cpus, table

SECTIONS = (
    "admission",
    "security",
    "relay",
    "gc",
    "prediction",
    "artifacts",
    "real_engine",
    "front_door",
    "kv_reuse",
    "loop",
)


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _f(x: Any, digits: int = 1) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, int | float):
        return f"{x:,.{digits}f}"
    return str(x)


def report_admission(r: dict[str, Any]) -> str:
    rows = [["", "tasks/s", "p50 ms", "p99 ms", "CPU us/task", "server CPU %", "loadgen CPU %", "tasks/s per round"]]
    named = (
        ("orchestratord (journal on, budgets off)", "orchestratord"),
        ("orchestratord (journal off)", "journal_off"),
        ("orchestratord (journal on, budgets on: one session, reserve per task)", "budgets_on"),
        (f"baseline: {r['baseline_server']}", "baseline"),
    )
    for label, key in named:
        m, x = r["median"][key], r[key]
        rows.append(
            [
                label,
                _f(m["tasks_per_s"], 0),
                _f(m["p50_ms"], 2),
                _f(m["p99_ms"], 2),
                _f(m["server_cpu_us_per_request"]),
                _f(x["server_cpu_pct"]),
                _f(x["loadgen_cpu_pct"]),
                " ".join(_f(v, 0) for v in r["tasks_per_s_all_rounds"][key]),
            ]
        )
    p, t, meets = r["params"], r["target"], r["meets"]

    def verdict(key: str) -> str:
        return "meets" if meets[key] else "MISSES"

    return "\n".join(
        [
            f"ADMISSION  POST /v1/tasks, {p['concurrency']} concurrent keep-alive clients ({p['client']} client), "
            f"{p['body_bytes']} B body, {p['warmup_s']:g} s warm-up + {p['duration_s']:g} s measured per server, "
            f"{p['rounds']} round(s) alternating the variants, medians shown (CPU %: the median round)",
            f"  {r['setup']}",
            table(rows),
            f"  orchestratord/baseline tasks/s: {_f(r['ratio'], 3)} (target >= {t['ratio_min']:g} with p99 < "
            f"{t['p99_ms_max']:g} ms: {verdict('ratio')}); CPU-cost ratio baseline/orchestratord: "
            f"{_f(r['cpu_ratio'], 3)}",
            f"  journal on/off tasks/s: {_f(r['journal_ratio'], 3)} (target >= {t['journal_ratio_min']:g}: "
            f"{verdict('journal')}); CPU-cost ratio: {_f(r['journal_cpu_ratio'], 3)}",
            f"  budgets on/off tasks/s: {_f(r['budgets_on_ratio'], 3)} (target >= {t['budgets_ratio_min']:g}: "
            f"{verdict('budgets')}); CPU-cost ratio: {_f(r['budgets_cpu_ratio'], 3)}",
            *(f"  note: {n}" for n in r["notes"]),
        ]
    )


def report_security(r: dict[str, Any]) -> str:
    rows = [["", "tasks/s", "p50 ms", "p99 ms", "CPU us/task", "server CPU %", "tasks/s ratio", "CPU-cost ratio"]]
    names = {
        "plain": "no auth, no metrics",
        "metrics": "metrics on",
        "token": "static bearer token + metrics",
        "jwt": "RS256 JWT (JWKS file) + metrics",
    }
    for key, label in names.items():
        x = r[key]
        rows.append([label, _f(x["tasks_per_s"], 0), _f(x["p50_ms"], 2), _f(x["p99_ms"], 2),
                     _f(r["cpu_us_per_task_median"][key]), _f(x["server_cpu_pct"]), _f(r["ratios"][key], 3),
                     _f(r["cpu_ratios"][key], 3)])  # fmt: skip
    verdict = "meets" if r["meets_target"] else "misses"
    p = r["params"]
    return "\n".join(
        [
            f"SECURITY  admission with auth and metrics on vs off, {p['concurrency']} clients ({p['client']}), "
            f"{p['warmup_s']:g} s warm-up + {p['duration_s']:g} s measured per variant",
            f"  {r['setup']}",
            table(rows),
            f"  target: every variant's tasks/s >= 0.9 of plain's: {verdict} "
            "(CPU-cost ratio: plain's server CPU per task over the variant's)",
            *(f"  note: {n}" for n in r["notes"]),
        ]
    )


def report_relay(r: dict[str, Any]) -> str:
    rows = [
        [
            "rate/stream",
            "offered tok/s",
            "direct tok/s",
            "through tok/s",
            "direct p50/p99 ms",
            "through p50/p99 ms",
            "through p99 ms: last 50 tok / rest",
            "added p50/p99 ms",
            "added p99 min..max (runs)",
            "orchestratord CPU % (us/token)",
        ]
    ]
    notes: list[str] = []
    for s in r["steps"]:
        d, t = s["direct"], s["through"]
        rows.append(
            [
                _f(s["rate_per_stream"], 0) + ("" if s.get("journal", True) else " (journal off)"),
                _f(s["offered_tokens_per_s"], 0),
                _f(d["tokens_per_s"], 0),
                _f(t["tokens_per_s"], 0),
                f"{_f(d['latency_p50_ms'], 2)} / {_f(d['latency_p99_ms'], 2)}",
                f"{_f(t['latency_p50_ms'], 2)} / {_f(t['latency_p99_ms'], 2)}",
                f"{_f(t.get('latency_p99_ms_last_50', math.nan), 2)} / "
                f"{_f(t.get('latency_p99_ms_before_last_50', math.nan), 2)}",
                f"{_f(s['added_p50_ms'], 2)} / {_f(s['added_p99_ms'], 2)}",
                f"{_f(s['added_p99_ms_min'], 2)}..{_f(s['added_p99_ms_max'], 2)} ({s['repeats']})",
                f"{_f(t['cpu_pct'].get('orchestratord', math.nan))} "
                f"({_f(t['cpu_us_per_token'].get('orchestratord', math.nan), 2)})",
            ]
        )
        where = f"R={s['rate_per_stream']:g}{'' if s.get('journal', True) else ' (journal off)'}"
        notes.extend(f"{where}: {n}" for n in s["notes"])
    t = r["target"]
    verdict = "meets" if r["meets_target"] else "MISSES"
    return "\n".join(
        [
            "RELAY  per-token latency = client arrival wall time - engine emission stamp; added = through - direct "
            "(medians over the runs; direct/through columns: the median run)",
            f"  {r['setup']}",
            table(rows),
            f"  target: added p99 < {t['added_p99_ms_max']:g} ms at R={t['rate_per_stream']:g} (median of the runs): "
            f"{verdict}",
            *(f"  note: {n}" for n in notes),
        ]
    )


def report_prediction(r: dict[str, Any]) -> str:
    verdict = "meets" if r["meets_target"] else "misses"
    lines = [
        "PREDICTION  admission's predicted_start_ms vs the measured wait (started event's waited_ms)",
        f"  {r['setup']}",
        f"  tasks measured: {r['tasks_measured']} (errors {r['error_count']}); "
        f"waited >= 10 ms: {r['tasks_waited_ge_10ms']}; wait median {_f(r['median_waited_ms'])} ms, "
        f"p90 {_f(r['p90_waited_ms'])} ms, max {r['max_waited_ms']} ms",
        f"  |error| as % of actual wait (tasks waiting >= 10 ms): median {_f(r['median_abs_err_pct'])}%, "
        f"p90 {_f(r['p90_abs_err_pct'])}%  (target median <= 15%: {verdict}); "
        f"median signed error {_f(r['median_signed_err_ms_waited'])} ms (+ = predicted later than actual)",
        f"  |error| in ms over all tasks: median {_f(r['median_abs_err_ms_all'])} ms, "
        f"p90 {_f(r['p90_abs_err_ms_all'])} ms",
    ]
    lines.extend(f"  error: {e}" for e in r["errors"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description="llama-orch benchmarks")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test; noisier numbers)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    parser.add_argument(
        "--loadgen",
        choices=["raw", "aiohttp"],
        default="raw",
        help="admission load generator's HTTP client: a minimal asyncio-protocol client (default; cheap enough "
        "never to be the limit) or aiohttp's client (saturates its core at about 14k requests/s)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (kept anyway on failure)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")

    cpus = pick_cpus()
    if cpus.load is not None:
        os.sched_setaffinity(0, {cpus.load})  # this driver (and the prediction clients) stay off the server core
    quick = args.quick
    adm = admission.AdmissionParams(client=args.loadgen)
    if quick:
        adm = admission.AdmissionParams(warmup_s=1.0, duration_s=2.0, client=args.loadgen, rounds=1)
    rel = relay.RelayParams()
    if quick:
        rel = relay.RelayParams(tokens=1000, rates=(1000.0,), repeats=1, journal_off=False)
    pred = prediction.PredictionParams(tasks=80) if quick else prediction.PredictionParams()
    real = real_engine.RealEngineParams(rounds=1, concurrency=(1,)) if quick else real_engine.RealEngineParams()
    loops = loop.LoopParams(items=12, big_items=32) if quick else loop.LoopParams()
    door = front_door.FrontDoorParams(rounds=1, admissions=300, ttft_runs=4) if quick else front_door.FrontDoorParams()
    kv = kv_reuse.KvParams(rounds=2) if quick else kv_reuse.KvParams()
    gcp = gc_pauses.GcParams(tasks=5_000, repeats=3) if quick else gc_pauses.GcParams()

    started = time.monotonic()
    result: dict[str, Any] = {
        "meta": {
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git": _git_rev(),
            "quick": quick,
            "python": platform.python_version(),
            "host_cpus": os.cpu_count(),
            "cpu_pinning": cpus.describe(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        }
    }
    print(f"llama-orch benchmarks ({'quick' if quick else 'full'}): {cpus.describe()}", flush=True)
    print(f"  load average at start: {result['meta']['loadavg_at_start']} (other work on the machine adds noise)\n")
    failed = False
    tmp = Path(tempfile.mkdtemp(prefix="llorch-bench-"))
    try:
        sections: list[tuple[str, Callable[[], dict[str, Any]], Callable[[dict[str, Any]], str]]] = [
            ("admission", partial(admission.run, adm, cpus, tmp), report_admission),
            ("security", partial(security.run, adm, cpus, tmp, 1 if quick else 3), report_security),
            ("relay", partial(relay.run, rel, cpus, tmp), report_relay),
            ("gc", partial(gc_pauses.run, gcp, cpus, tmp), gc_pauses.report),
            ("prediction", partial(prediction.run, pred, cpus, tmp), report_prediction),
            ("artifacts", partial(artifacts.run_section, quick, cpus), artifacts.report),
            ("real_engine", partial(real_engine.run, real, cpus, tmp), real_engine.report),
            ("front_door", partial(front_door.run, door, tmp), front_door.report),
            ("kv_reuse", partial(kv_reuse.run, kv, cpus, tmp), kv_reuse.report),
            ("loop", partial(loop.run, loops, cpus, tmp), loop.report),
        ]
        for name, fn, report in sections:
            if name not in only:
                continue
            t0 = time.monotonic()
            try:
                section = fn()
            except Exception as exc:  # a failed section is reported; the others still run
                failed = True
                section = {"failed": f"{type(exc).__name__}: {exc}"}
                print(f"{name.upper()} FAILED: {type(exc).__name__}: {exc}\n", flush=True)
            else:
                print(report(section) + "\n", flush=True)
            section["elapsed_s"] = round(time.monotonic() - t0, 1)
            result[name] = section
    finally:
        if args.keep_logs or failed:
            print(f"servers' logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['meta']['elapsed_s']:.0f} s; JSON written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
