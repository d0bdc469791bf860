"""The auto-programmer against a mock pool of realistic speed: are the engine's slots kept busy?

Setup: orchestratord (a process, on the server CPU) serves one mock pool whose replica decodes at
30 tokens/s per slot after a 300 ms first token, scripted to answer every contract item of a
synthetic spec with a valid JSON Schema of about ``answer_tokens`` tokens. ``llama-orch contract
sync`` (a process, on the other CPU) runs over a fresh git repository holding that spec, with the
contracts gate and a trivial tests gate (``true``): what is measured is the loop's orchestration
(prompts, model calls, edits, commits, the merge queue), not a project's test suite.

Measured, from the CLI's own records and from ``GET /v1/replicasets`` sampled every 50 ms:

* **slot occupancy** while work is pending: the mean of busy/total slots from the first busy sample
  to the start of the last model call (after it, nothing is left to fill a freed slot);
* **429 rate**: submissions answered 429 / all submissions (the SDK limiter's counters);
* **orchestration vs engine time**: the engine's time per call (first token + tokens at the
  decode rate) against what a round of an item took beyond its model call, and the run's wall
  time against the engine-bound ideal (all engine time spread over the slots);
* the **CLI's CPU and memory per agent**, at ``--agents auto`` on 4 slots and at 64 agents on 16
  slots (CPU seconds of the CLI process itself, its peak RSS, both divided by the agents).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from benchmarks._common import HOST, Cpus, cpu_seconds, free_port, pin, running, venv_tool

__all__ = ["LoopParams", "report", "run"]


@dataclass(frozen=True)
class LoopParams:
    items: int = 32
    """Requirements (so contract items) of the 4-slot run."""
    slots: int = 4
    tokens_per_s: float = 30.0
    first_token_ms: float = 300.0
    answer_tokens: int = 90
    big_items: int = 96
    big_slots: int = 16
    big_agents: int = 64
    timeout_s: float = 900.0


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


def make_project(root: Path, n: int) -> Path:
    repo = root / "project"
    (repo / "specs").mkdir(parents=True)
    (repo / "src" / "bench").mkdir(parents=True)
    (repo / "src" / "bench" / "__init__.py").write_text('"""bench"""\n')
    lines = ["# bench\n", "Package: `bench`\n"]
    lines += [f"- [BEN-{i:04d}] `bench.m{i:04d}.f{i:04d}(x)` MUST return `x` unchanged." for i in range(1, n + 1)]
    (repo / "specs" / "bench.md").write_text("\n".join(lines) + "\n")
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0"\n\n[tool.llama-orch]\nmax_tries = 2\n\n'
        '[tool.llama-orch.gates]\ntest = "true"\n'
    )
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "add", "--all")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "-c", "commit.gpgsign=false", "commit", "-qm", "spec")
    return repo


def make_script(path: Path, n: int, tokens: int) -> Path:
    words = " ".join(f"w{k}" for k in range(max(1, tokens - 40)))
    rules = []
    for i in range(1, n + 1):
        doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "x-req-id": f"BEN-{i:04d}",
               "title": f"bench.m{i:04d}.f{i:04d}", "description": words, "type": "object",
               "properties": {"arguments": {"type": "object"}, "result": {}}}  # fmt: skip
        answer = f"contracts/ben-{i:04d}.schema.json\n<<<<<<< FILE\n{json.dumps(doc, indent=1)}\n>>>>>>> FILE\n"
        rules.append({"role": "contract-writer", "match": f"Work item: contract:BEN-{i:04d}", "answer": answer})
    path.write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    return path


class _Sampler(threading.Thread):
    """Samples the pool's busy slots and the CLI's CPU and RSS every 50 ms."""

    def __init__(self, url: str, pid: int) -> None:
        super().__init__(daemon=True)
        self.url, self.pid = url, pid
        self.slots: list[tuple[float, int, int]] = []
        self.cpu_s = 0.0
        self.rss_peak_kib = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(f"{self.url}/v1/replicasets", timeout=2) as resp:
                    rs = json.load(resp)["replicasets"][0]
                self.slots.append((time.time(), rs["slots_total"] - rs["slots_free"], rs["slots_total"]))
            except OSError:
                pass
            self.cpu_s = max(self.cpu_s, cpu_seconds(self.pid))
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss_peak_kib = max(self.rss_peak_kib, int(line.split()[1]))
            except OSError:
                pass
            self.stop.wait(0.05)


def _events(repo: Path) -> list[dict[str, Any]]:
    files = sorted((repo / ".git" / "llorch" / "runs").glob("*/events.jsonl"))
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()] if files else []


def run_one(p: LoopParams, cpus: Cpus, tmp: Path, *, name: str, items: int, slots: int, agents: str) -> dict[str, Any]:
    work = tmp / name
    work.mkdir()
    repo = make_project(work, items)
    script = make_script(work / "script.yaml", items, p.answer_tokens)
    config = {
        "server": {"heartbeat_s": 1.0},
        "pools": [{"id": "default", "mock": {"tokens_per_s": p.tokens_per_s, "first_token_ms": p.first_token_ms,
                                             "slots": slots, "script": str(script)}}],
    }  # fmt: skip
    (work / "orchestratord.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [venv_tool("orchestratord"), "--config", str(work / "orchestratord.yaml"), "--port", str(port),
            "--data-dir", str(work / "data")]  # fmt: skip
    with running(f"{name}-orchestratord", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{url}/healthz"):
        cli = subprocess.Popen(
            [venv_tool("llama-orch"), "--base-url", url, "--json", "contract", "sync", "--repo", str(repo),
             "--agents", agents],
            stdout=subprocess.PIPE, stderr=(tmp / f"{name}-cli.err").open("wb"), cwd=work,
            env={k: v for k, v in os.environ.items() if not k.startswith("LLORCH_")},
        )  # fmt: skip
        pin(cli.pid, cpus.load)
        sampler = _Sampler(url, cli.pid)
        sampler.start()
        try:
            out, _ = cli.communicate(timeout=p.timeout_s)
        finally:
            sampler.stop.set()
            sampler.join(5)
            if cli.poll() is None:
                cli.kill()
                cli.wait()
    if cli.returncode != 0:
        raise RuntimeError(f"llama-orch exited {cli.returncode}: {(tmp / f'{name}-cli.err').read_text()[-2000:]}")
    summary = json.loads(out.decode().strip().splitlines()[-1])
    events = _events(repo)
    started = {e["task_id"]: e["t"] for e in events if e["event"] == "call-started"}
    finished = {e["task_id"]: e for e in events if e["event"] == "call-finished"}
    last_start = max(started.values())
    window = [(t, busy, total) for t, busy, total in sampler.slots if t <= last_start]
    first_busy = next((i for i, s in enumerate(window) if s[1] > 0), len(window))
    window = window[first_busy:]
    occupancy = sum(b / t for _, b, t in window) / len(window) if window else float("nan")
    engine_s = [p.first_token_ms / 1000 + e["tokens_out"] / p.tokens_per_s for e in finished.values()]
    rounds: dict[str, float] = {}
    for e in events:
        if e["event"] == "round-started":
            rounds[e["item"]] = e["t"]
    beyond = []
    ends = {e["item"]: e["t"] for e in events if e["event"] == "round-ended"}
    call_of = {e["item"]: (started[e["task_id"]], e["t"]) for e in finished.values()}
    for item, t0 in rounds.items():
        if item in ends and item in call_of:
            c0, c1 = call_of[item]
            beyond.append((ends[item] - t0) - (c1 - c0))
    limiter = summary.get("limiter") or {}
    submitted = limiter.get("admitted", 0) + limiter.get("backpressure", 0)
    n_agents = summary.get("agents_peak") or summary["agents"]
    return {
        "items": items, "slots": slots, "agents": n_agents, "status": summary["status"],
        "items_done": summary["items"]["done"], "model_calls": summary["model_calls"],
        "wall_s": summary["elapsed_s"], "engine_s_total": round(sum(engine_s), 2),
        "ideal_s": round(sum(engine_s) / slots, 2),
        "wall_over_ideal": round(summary["elapsed_s"] / (sum(engine_s) / slots), 3) if engine_s else None,
        "engine_s_per_call_median": round(median(engine_s), 3) if engine_s else None,
        "orchestration_s_per_item_median": round(median(beyond), 3) if beyond else None,
        "occupancy_while_pending": round(occupancy, 4), "occupancy_samples": len(window),
        "submissions": submitted, "rejected_429": limiter.get("backpressure", 0),
        "rate_429": round(limiter.get("backpressure", 0) / submitted, 4) if submitted else None,
        "limiter_peak_in_flight": limiter.get("peak_in_flight"),
        "cli_cpu_s": round(sampler.cpu_s, 2), "cli_rss_peak_mib": round(sampler.rss_peak_kib / 1024, 1),
        "cli_cpu_ms_per_agent": round(sampler.cpu_s * 1000 / n_agents, 1),
        "cli_rss_kib_per_agent": round(sampler.rss_peak_kib / n_agents, 1),
    }  # fmt: skip


def run(p: LoopParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    auto = run_one(p, cpus, tmp, name="loop-auto", items=p.items, slots=p.slots, agents="auto")
    big = run_one(p, cpus, tmp, name="loop-64", items=p.big_items, slots=p.big_slots, agents=str(p.big_agents))
    setup = (f"mock pool: {p.tokens_per_s:g} tokens/s per slot, {p.first_token_ms:g} ms first token, answers of "
             f"~{p.answer_tokens} tokens; `llama-orch contract sync` over a synthetic spec; "
             f"{cpus.describe()}")  # fmt: skip
    target = auto["occupancy_while_pending"] >= 0.95 and (auto["rate_429"] or 0.0) < 0.05
    return {"params": asdict(p), "setup": setup, "auto": auto, "agents_64": big, "meets_target": target}


def report(r: dict[str, Any]) -> str:
    rows = []
    for label, x in (("--agents auto", r["auto"]), (f"--agents {r['agents_64']['agents']}", r["agents_64"])):
        rows.append(
            f"  {label:14} {x['slots']:>2} slots, {x['agents']:>2} agents, {x['items_done']}/{x['items']} items: "
            f"occupancy {x['occupancy_while_pending']:.1%}, 429 {x['rejected_429']}/{x['submissions']} "
            f"({(x['rate_429'] or 0):.1%}), wall {x['wall_s']:.1f} s vs ideal {x['ideal_s']:.1f} s "
            f"(x{x['wall_over_ideal']}), per item: engine {x['engine_s_per_call_median']} s, orchestration "
            f"{x['orchestration_s_per_item_median']} s; CLI CPU {x['cli_cpu_s']} s "
            f"({x['cli_cpu_ms_per_agent']} ms/agent), peak RSS {x['cli_rss_peak_mib']} MiB "
            f"({x['cli_rss_kib_per_agent']} KiB/agent)"
        )
    verdict = "meets" if r["meets_target"] else "misses"
    return "\n".join(
        ["LOOP  the auto-programmer keeping a realistic mock pool busy", f"  {r['setup']}", *rows,
         f"  target (auto): occupancy >= 95% while work is pending, < 5% of submissions 429: {verdict}"]
    )  # fmt: skip
