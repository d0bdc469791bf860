"""Full-GC pauses of orchestratord holding many queued tasks, with and without ``gc.freeze()``.

One child process per variant, pinned to the server CPU, builds orchestratord exactly as
``server/__main__.py`` does (``load_config``, a data dir so the journal is on, uvloop,
``create_app``, then — in the ``freeze`` variant — ``gc.collect(); gc.freeze()`` and the same
``gc.set_threshold``; the ``no_freeze`` variant only sets the threshold) and serves it on 127.0.0.1.
The load generator (``benchmarks/loadgen.py``, pinned to the load CPU) then admits ``tasks`` tasks
through the real admission path (``POST /v1/tasks``) into a mock pool whose one slot never frees,
with a queue large enough for all. Every collection during admission is timed (``gc.callbacks``);
afterwards, with all tasks queued, full collections (``gc.collect()``) are timed ``repeats`` times.

``python -m benchmarks.gc_pauses --variant freeze --tasks 100000 --data-dir D --load-cpu 1`` prints
one JSON line; :func:`run` drives both variants (the ``gc`` section of ``scripts/bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import HOST, PYTHON, Cpus, admission_body, run_json, table

VARIANTS = ("no_freeze", "freeze", "policy")
TARGET_PAUSE_MS = 20.0
"""Issue 12: full-GC pauses with 100k queued tasks below this, with the freeze."""
SLOTS = 1
"""The mock pool's one slot holds the first task (it never gives a token); the rest stay queued."""
GC_THRESHOLD = (50_000, 20, 20)
"""What orchestratord sets (``server/_gc.py`` ``THRESHOLD``; checked: see :func:`_main_threshold`)."""


@dataclass(frozen=True)
class GcParams:
    tasks: int = 100_000
    repeats: int = 5
    concurrency: int = 64


def orchestratord_config(tasks: int) -> dict[str, Any]:
    return {
        "server": {"host": HOST, "orphan_timeout_s": None},
        "pools": [
            {
                "id": "default",
                "engine": "mock",
                "model_ref": "mock:tiny",
                "queue": {"capacity": max(2 * tasks, 1000), "policy": "reject"},
                "first_token_timeout_s": 7200,
                "mock": {"slots": SLOTS, "first_token_ms": 3_600_000, "tokens_per_s": 1},
            }
        ],
    }


def _main_threshold() -> tuple[int, int, int]:
    """The threshold orchestratord sets (``server/_gc.py``), so that the two cannot drift apart."""
    from llama_orch.server._gc import THRESHOLD

    return THRESHOLD


class _Pauses:
    """Times every collection through ``gc.callbacks`` (wall and CPU time, per generation)."""

    def __init__(self) -> None:
        self.wall: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.cpu: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t0 = (0.0, 0.0)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = (time.perf_counter(), time.thread_time())
        else:
            gen = info["generation"]
            self.wall[gen].append((time.perf_counter() - self._t0[0]) * 1000)
            self.cpu[gen].append((time.thread_time() - self._t0[1]) * 1000)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            w, c = self.wall[gen], self.cpu[gen]
            out[f"gen{gen}"] = {
                "count": len(w),
                "wall_ms_max": round(max(w), 3) if w else None,
                "wall_ms_median": round(statistics.median(w), 3) if w else None,
                "cpu_ms_max": round(max(c), 3) if c else None,
            }
        return out


async def _time_full(repeats: int) -> tuple[list[float], list[float]]:
    """``repeats`` timed ``gc.collect()`` calls (wall ms, CPU ms of this thread), the loop idle between."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.thread_time()
        gc.collect()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        await asyncio.sleep(0.05)
    return wall, cpu


async def _serve_and_measure(app: Any, args: argparse.Namespace) -> dict[str, Any]:
    from aiohttp import web

    from llama_orch.server._http import ORCH

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        port = runner.addresses[0][1]
        body_file = Path(args.data_dir) / "gc-body.json"
        body_file.write_bytes(admission_body())
        before = gc.get_objects()
        tracked_before = len(before)
        referents_before = sum(len(gc.get_referents(o)) for o in before)
        del before
        frozen = gc.get_freeze_count()
        pauses = _Pauses()
        gc.callbacks.append(pauses)
        load_argv = [
            PYTHON, "-m", "benchmarks.loadgen", f"--url=http://{HOST}:{port}/v1/tasks", f"--body-file={body_file}",
            f"--concurrency={args.concurrency}", "--warmup=0", f"--duration={args.admit_timeout}",
            f"--max-requests={args.tasks}", f"--server-pid={os.getpid()}", "--client=raw",
        ]  # fmt: skip
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *load_argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            if args.load_cpu is not None:
                os.sched_setaffinity(proc.pid, {args.load_cpu})
            out, err = await asyncio.wait_for(proc.communicate(), args.admit_timeout + 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        admit_s = time.perf_counter() - t0
        gc.callbacks.remove(pauses)
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
        load = json.loads(out.decode().strip().splitlines()[-1])
        orchestrator = app[ORCH]
        await asyncio.sleep(0.2)  # let the journal's last group commit land
        queued = sum(len(pool.queue) for pool in orchestrator.pools.values())
        tracked = gc.get_objects()
        tracked_after = len(tracked)
        by_type = Counter(type(o).__qualname__ for o in tracked).most_common(10)
        referents = sum(len(gc.get_referents(o)) for o in tracked)  # what a full collection visits
        del tracked
        full_wall, full_cpu = await _time_full(args.repeats)
        # For comparison: what a full collection costs once the queued tasks are frozen too (what a
        # freeze of long-lived objects after start-up cannot do for tasks admitted later).
        gc.freeze()
        refrozen_wall, refrozen_cpu = await _time_full(args.repeats)
        gc.unfreeze()
        return {
            "tasks_admitted": load["accepted_202"],
            "statuses": load["statuses"],
            "tasks_queued": queued,
            "admit_s": round(admit_s, 2),
            "admission_tasks_per_s": round(load["accepted_202"] / admit_s, 1) if admit_s else 0.0,
            "tracked_objects_before": tracked_before,
            "tracked_objects_after": tracked_after,
            "tracked_objects_per_task": round((tracked_after - tracked_before) / max(1, queued), 1),
            "tracked_referents": referents,
            "referents_per_task": round((referents - referents_before) / max(1, queued), 1),
            "frozen_objects": frozen,
            "top_tracked_types": [[name, n] for name, n in by_type],
            "during_admission": pauses.summary(),
            "full_collect_wall_ms": [round(x, 3) for x in full_wall],
            "full_collect_cpu_ms": [round(x, 3) for x in full_cpu],
            "full_wall_ms_median": round(statistics.median(full_wall), 3),
            "full_wall_ms_max": round(max(full_wall), 3),
            "full_cpu_ms_median": round(statistics.median(full_cpu), 3),
            "full_cpu_ms_max": round(max(full_cpu), 3),
            "all_frozen_full_wall_ms_median": round(statistics.median(refrozen_wall), 3),
            "all_frozen_full_cpu_ms_median": round(statistics.median(refrozen_cpu), 3),
        }
    finally:
        await runner.cleanup()


def child(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gc_pauses", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--tasks", type=int, default=GcParams.tasks)
    parser.add_argument("--repeats", type=int, default=GcParams.repeats)
    parser.add_argument("--concurrency", type=int, default=GcParams.concurrency)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--load-cpu", type=int, default=None)
    parser.add_argument("--admit-timeout", type=float, default=240.0, help="seconds the admission may take at most")
    args = parser.parse_args(argv)

    from llama_orch.server.app import create_app
    from llama_orch.server.config import load_config

    # As server/__main__.py: config from a file, the data dir set (so the journal is on), uvloop.
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    config_path = Path(args.data_dir) / "gc-config.yaml"
    config_path.write_text(yaml.safe_dump(orchestratord_config(args.tasks)))
    config = load_config(config_path)
    config = config.model_copy(update={"data_dir": args.data_dir})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(config)
    threshold = _main_threshold()
    if args.variant == "policy":  # what server/__main__.py does: the freeze, the threshold, the policy
        from llama_orch.server._gc import configure
        from llama_orch.server._http import ORCH

        orchestrator = app[ORCH]
        configure(app, lambda: sum(len(pool.queue) for pool in orchestrator.pools.values()))
    elif args.variant == "freeze":  # the start-up freeze alone (what orchestratord did before the policy)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*threshold)
    else:
        gc.set_threshold(*threshold)
    try:
        result = loop.run_until_complete(_serve_and_measure(app, args))
    finally:
        loop.close()
    result.update(variant=args.variant, gc_threshold=list(threshold), python=sys.version.split()[0])
    print(json.dumps(result), flush=True)


def run(p: GcParams, cpus: Cpus, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        data_dir = tmp / f"data-gc-{variant}"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            PYTHON, "-m", "benchmarks.gc_pauses", f"--variant={variant}", f"--tasks={p.tasks}",
            f"--repeats={p.repeats}", f"--concurrency={p.concurrency}", f"--data-dir={data_dir}",
        ]  # fmt: skip
        if cpus.load is not None:
            argv.append(f"--load-cpu={cpus.load}")
        results[variant] = run_json(f"gc-{variant}", argv, cpu=cpus.server, log_dir=tmp, timeout_s=400)
    frozen = results["policy"]
    notes = []
    for variant, r in results.items():
        if r["tasks_queued"] < p.tasks - SLOTS:
            notes.append(f"{variant}: only {r['tasks_queued']} of {p.tasks} tasks queued (statuses {r['statuses']})")
    return {
        "setup": (
            f"orchestratord built as server/__main__.py does (journal on), {p.tasks:,} tasks admitted over HTTP by "
            "the load generator into a mock pool whose one slot never frees; full collections (gc.collect()) "
            f"timed {p.repeats} times with all of them queued; the collections run during admission timed by "
            "gc.callbacks"
        ),
        "params": {"tasks": p.tasks, "repeats": p.repeats, "concurrency": p.concurrency},
        **results,
        "target": {"full_pause_ms_max": TARGET_PAUSE_MS},
        "meets_target": bool(frozen["full_cpu_ms_max"] < TARGET_PAUSE_MS),
        "notes": notes,
    }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def report(r: dict[str, Any]) -> str:
    rows = [
        ["", "queued", "objects/task", "refs/task", "frozen at start", "full GC ms med/max (CPU)",
         "full GC wall ms max", "in admission gen0/1/2: n, max ms", "all frozen: full GC ms"],
    ]  # fmt: skip
    labels = {
        "no_freeze": "no gc.freeze()",
        "freeze": "gc.freeze() after start-up only",
        "policy": "orchestratord's policy (server/_gc.py)",
    }
    for variant in VARIANTS:
        x = r[variant]
        during = x["during_admission"]
        collections = " | ".join(
            f"{during[f'gen{g}']['count']}, {_ms(during[f'gen{g}']['wall_ms_max'])}" for g in (0, 1, 2)
        )
        rows.append(
            [
                labels[variant],
                f"{x['tasks_queued']:,}",
                f"{x['tracked_objects_per_task']:.1f}",
                f"{x['referents_per_task']:.1f}",
                f"{x['frozen_objects']:,}",
                f"{x['full_cpu_ms_median']:.1f} / {x['full_cpu_ms_max']:.1f}",
                f"{x['full_wall_ms_max']:.1f}",
                collections,
                f"{x['all_frozen_full_cpu_ms_median']:.1f}",
            ]
        )
    verdict = "meets" if r["meets_target"] else "MISSES"
    return "\n".join(
        [
            "GC  full-collection pauses of orchestratord with queued tasks",
            f"  {r['setup']}",
            table(rows),
            f"  target: full GC < {r['target']['full_pause_ms_max']:g} ms with orchestratord's policy (max CPU ms of "
            f"gc.collect()): {verdict}; 'in admission': the collections the interpreter ran itself while the "
            "tasks were admitted (threshold as orchestratord sets it); 'all frozen': gc.freeze() once the tasks "
            "are queued, for comparison",
            *(f"  note: {n}" for n in r["notes"]),
        ]
    )


if __name__ == "__main__":
    child()
