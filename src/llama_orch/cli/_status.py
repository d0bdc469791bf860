"""``llama-orch status`` (pools, replicas, slots, queues, SLO; agent progress; ``--watch``) and ``capabilities``.

Agent progress comes from a loop run's ``status.json`` (under ``<git-common-dir>/llorch/runs/``):
shown for the run named by ``--run``, for the latest run of ``--repo``, or, with neither, for a run
working right now in the repository of the current directory. With ``--json`` it is the ``loop``
key beside the replica sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from llama_orch.agents import RunState, list_runs
from llama_orch.cli._errors import CliError, ExitCode
from llama_orch.cli._loop_view import agents_table, run_lines
from llama_orch.cli._state import JsonFlag, state_of
from llama_orch_api import Capabilities, ReplicaSetList

_STATE_STYLE = {"ready": "green", "reloading": "cyan", "draining": "yellow", "drained": "yellow", "unready": "red"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def status_table(sets: ReplicaSetList) -> Table:
    table = Table(title="pools", title_justify="left")
    for column in ("pool", "state", "model", "slots busy", "queue", "load", "first token p50", "tok/s p50"):
        table.add_column(column, justify="right" if column in ("slots busy", "queue", "load") else "left")
    for rs in sets.replicasets:
        tps = rs.slo.decode_tokens_per_s_p50
        table.add_row(
            rs.pool,
            Text(rs.state, style=_STATE_STYLE.get(rs.state, "")),
            rs.model_ref,
            f"{rs.slots_total - rs.slots_free}/{rs.slots_total}",
            f"{rs.queue_depth}/{rs.queue_capacity}",
            f"{rs.load:.0%}",
            _ms(rs.slo.first_token_ms_p50),
            "-" if tps is None else f"{tps:.0f}",
        )
        for r in rs.replicas:
            table.add_row(
                Text(f"  {r.id}", style="dim"), Text(r.state, style="dim"), Text(r.model_ref, style="dim"),
                Text(f"{r.slots_total - r.slots_free}/{r.slots_total}", style="dim"),
            )  # fmt: skip
    return table


def _llorch_dir(repo: Path) -> Path | None:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                          capture_output=True, text=True, check=False, timeout=30)  # fmt: skip
    return Path(done.stdout.strip()) / "llorch" if done.returncode == 0 else None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def loop_status(repo: Path | None, run_id: str | None) -> dict[str, Any] | None:
    """The status snapshot of a loop run (see the module docstring), or None."""
    llorch = _llorch_dir(repo or Path("."))
    if llorch is None:
        if repo is not None or run_id is not None:
            raise CliError(f"{repo or Path('.')} is not inside a git repository: no loop runs to show")
        return None
    if run_id is not None:
        try:
            run = RunState.open(llorch, run_id)
        except FileNotFoundError as exc:
            raise CliError(str(exc), exit_code=ExitCode.NOT_FOUND) from None
    else:
        runs = list_runs(llorch)
        if not runs:
            return None
        run = runs[-1]
    snap = run.status()
    if snap is None:
        return None
    if repo is None and run_id is None and not (snap.get("status") == "running" and _alive(snap.get("pid"))):
        return None
    if snap.get("status") == "running" and not _alive(snap.get("pid")):
        snap["status"] = "dead"
        snap["reason"] = f"its process is gone: resume with `llama-orch loop run --resume {snap.get('run_id')}`"
    return snap


def _loop_view(snap: dict[str, Any]) -> RenderableType:
    head = Text.assemble(run_lines(snap), f"\n{snap.get('status')}: {snap.get('reason') or ''}")
    return Group(head, agents_table(snap.get("agents", [])))


def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C (or --count).")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")] = 2.0,
    count: Annotated[int, typer.Option(min=0, help="With --watch: stop after this many refreshes (0: never).")] = 0,
    repo: Annotated[
        Path | None, typer.Option("--repo", help="Show the latest loop run of this repository.", show_default=False)
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Show this loop run (RUN_ID).", show_default=False)] = None,
    json_out: JsonFlag = False,
) -> None:
    """Pools, their replicas and slots, queue depths and SLO snapshots (GET /v1/replicasets), and the
    agents of a loop run: role, work item, state, tokens; items done/failed, budget left, gate pass rate."""
    state = state_of(ctx)
    client = state.client()
    as_json = state.use_json(json_out)

    def emit(sets: ReplicaSetList, snap: dict[str, Any] | None) -> None:
        if snap is None:
            state.emit(sets)
            return
        sys.stdout.write(json.dumps({**sets.model_dump(mode="json"), "loop": snap}, default=str) + "\n")
        sys.stdout.flush()

    def view(sets: ReplicaSetList, snap: dict[str, Any] | None) -> RenderableType:
        return Group(status_table(sets), _loop_view(snap)) if snap is not None else status_table(sets)

    if not watch:
        sets = client.replicasets()
        snap = loop_status(repo, run)
        if as_json:
            emit(sets, snap)
        else:
            state.out.print(view(sets, snap))
        return
    shown = 0
    try:
        if as_json:  # one JSON line per refresh
            while True:
                emit(client.replicasets(), loop_status(repo, run))
                shown += 1
                if count and shown >= count:
                    return
                time.sleep(interval)
        with Live(console=state.out, auto_refresh=False) as live:
            while True:
                sets = client.replicasets()
                stamp = Text(f"every {interval:g} s · {time.strftime('%H:%M:%S')} · Ctrl-C to stop", style="dim")
                live.update(Group(view(sets, loop_status(repo, run)), stamp), refresh=True)
                shown += 1
                if count and shown >= count:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        return  # the way a watch ends


def capabilities(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """What the server offers: API version, engines, models, limits and features per pool."""
    state = state_of(ctx)
    caps = state.client().capabilities()
    if state.use_json(json_out):
        state.emit(caps)
        return
    state.out.print(capabilities_table(caps))


def capabilities_table(caps: Capabilities) -> Table:
    table = Table(title=f"API {caps.api_version}", title_justify="left", show_header=False, box=None)
    table.add_column("", style="bold")
    table.add_column("")
    for p in caps.pools:
        table.add_row(f"pool {p.id}", f"{p.engine} {p.engine_version}, model {p.model_ref}")
        table.add_row("", f"ctx_max {p.ctx_max}, max_tokens {p.max_tokens}, concurrency {p.concurrency} "
                          f"({p.replicas} replica(s) x {p.slots} slots)")  # fmt: skip
        table.add_row("", f"queue {p.queue_capacity} ({p.queue_policy}), price/token {p.price_per_token:g}")
        table.add_row("", f"workloads {', '.join(p.workloads)}; determinism {', '.join(p.determinism)}")
    if caps.sampler_profiles:
        table.add_row("sampler profiles", ", ".join(s.name for s in caps.sampler_profiles))
    return table
