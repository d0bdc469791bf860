"""``llama-orch status`` (pools, replicas, slots, queues, SLO; ``--watch``) and ``capabilities``."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

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


def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C (or --count).")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")] = 2.0,
    count: Annotated[int, typer.Option(min=0, help="With --watch: stop after this many refreshes (0: never).")] = 0,
    json_out: JsonFlag = False,
) -> None:
    """Pools, their replicas and slots, queue depths and SLO snapshots (GET /v1/replicasets)."""
    state = state_of(ctx)
    client = state.client()
    as_json = state.use_json(json_out)
    if not watch:
        sets = client.replicasets()
        if as_json:
            state.emit(sets)
        else:
            state.out.print(status_table(sets))
        return
    shown = 0
    try:
        if as_json:  # one JSON line per refresh
            while True:
                state.emit(client.replicasets())
                shown += 1
                if count and shown >= count:
                    return
                time.sleep(interval)
        with Live(console=state.out, auto_refresh=False) as live:
            while True:
                sets = client.replicasets()
                stamp = Text(f"every {interval:g} s · {time.strftime('%H:%M:%S')} · Ctrl-C to stop", style="dim")
                live.update(Group(status_table(sets), stamp), refresh=True)
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
