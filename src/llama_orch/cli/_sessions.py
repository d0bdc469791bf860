"""``llama-orch sessions show|rm ID``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from llama_orch.cli._state import JsonFlag, state_of

app = typer.Typer(help="Inspect or drop sessions (KV reuse, budgets).", no_args_is_help=True)

SessionId = Annotated[str, typer.Argument(help="The session's id.", show_default=False)]


@app.command("show")
def show(ctx: typer.Context, session_id: SessionId, json_out: JsonFlag = False) -> None:
    """A session's TTL, turns, KV warmth, replica and budget."""
    state = state_of(ctx)
    info = state.client().get_session(session_id)
    if state.use_json(json_out):
        state.emit(info)
        return
    table = Table(show_header=False, box=None)
    table.add_row("session", info.session_id)
    table.add_row("ttl left", f"{info.ttl_ms_remaining / 1000:.1f} s")
    table.add_row("turns", f"{info.turns}" + (f" of {info.max_turns}" if info.max_turns is not None else ""))
    table.add_row("tokens used", str(info.tokens_used))
    table.add_row("kv warm", "yes" if info.kv_warmth else "no")
    table.add_row("pool / replica", f"{info.pool or '-'} / {info.replica or '-'}")
    if info.budget is not None:
        b = info.budget
        table.add_row("budget tokens", f"{b.tokens_used} used, {b.tokens_reserved} reserved, {b.tokens_remaining} left")
        table.add_row("budget cost", f"{b.cost_used:g} used, {b.cost_reserved:g} reserved, {b.cost_remaining} left")
        table.add_row("budget wall ms", f"{b.wall_ms_used} used, {b.wall_ms_remaining} left")
    state.out.print(table)


@app.command("rm")
def remove(ctx: typer.Context, session_id: SessionId, json_out: JsonFlag = False) -> None:
    """Drop a session (tasks already admitted are not affected)."""
    state = state_of(ctx)
    state.client().delete_session(session_id)
    if state.use_json(json_out):
        sys.stdout.write(json.dumps({"session_id": session_id, "deleted": True}) + "\n")
    else:
        state.out.print(f"deleted session {session_id}", markup=False)
