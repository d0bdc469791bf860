"""``llama-orch pools health|drain|reload``; drain and reload show live progress while they wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from llama_orch.cli._state import JsonFlag, State, state_of
from llama_orch.client import LlamaOrchError
from llama_orch_api import PoolHealth, PoolOperation

app = typer.Typer(help="Pool health, drain and reload.", no_args_is_help=True)

PoolId = Annotated[str, typer.Argument(help="The pool's id (see `llama-orch status`).", show_default=False)]
T = TypeVar("T")


def _health_table(health: PoolHealth) -> Table:
    table = Table(show_header=False, box=None)
    table.add_row("pool", health.pool)
    table.add_row("state", f"{health.state} (live: {health.live}, admitting: {health.ready})")
    table.add_row("model", health.model_ref)
    table.add_row("engine", f"{health.engine} {health.engine_version}")
    table.add_row("running / queued", f"{health.active} / {health.queue_depth}")
    for replica in health.replicas:
        busy = replica.slots_total - replica.slots_free
        table.add_row(f"replica {replica.id}", f"{replica.state}, {busy}/{replica.slots_total} slots busy")
    if health.drain_deadline_ms is not None:
        table.add_row("drain deadline", f"{health.drain_deadline_ms} ms")
    if health.last_error:
        table.add_row("last error", health.last_error)
    return table


def _with_progress(state: State, pool_id: str, label: str, operation: Callable[[], T]) -> T:
    """Run a synchronous pool operation; meanwhile poll the pool's health into a spinner."""
    with state.spinner(label) as spinner:
        if spinner is None:
            return operation()
        outcome: list[T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(operation())
            except BaseException as exc:  # handed to the main thread
                failure.append(exc)

        # A daemon: on Ctrl-C the CLI exits and the operation goes on on the server, as it would.
        worker = threading.Thread(target=run, name=f"{label}-{pool_id}", daemon=True)
        started = time.monotonic()
        worker.start()
        client = state.client()
        while worker.is_alive():
            worker.join(0.5)
            if not worker.is_alive():
                break
            try:
                health = client.pool_health(pool_id, timeout=2)
            except LlamaOrchError:
                continue
            spinner.update(
                f"{label} {pool_id}: {health.state}, {health.active} running, {health.queue_depth} queued "
                f"· {time.monotonic() - started:.1f} s"
            )
    if failure:
        raise failure[0]
    return outcome[0]


def _report(state: State, result: PoolOperation) -> None:
    if state.json:
        state.emit(result)
        return
    state.out.print(f"{result.message} ({result.duration_ms} ms; pool is {result.state})", markup=False)


@app.command("health")
def health(ctx: typer.Context, pool_id: PoolId, json_out: JsonFlag = False) -> None:
    """A pool's state, model, replicas, load and last error."""
    state = state_of(ctx)
    result = state.client().pool_health(pool_id)
    if state.use_json(json_out):
        state.emit(result)
    else:
        state.out.print(_health_table(result))


@app.command("drain")
def drain(
    ctx: typer.Context,
    pool_id: PoolId,
    deadline_ms: Annotated[
        int | None,
        typer.Option(
            min=0, help="How long running and queued tasks may finish (server default 30000).", show_default=False
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Stop admitting to a pool and let its tasks finish; waits until it is drained."""
    state = state_of(ctx)
    state.use_json(json_out)
    client = state.client()
    result = _with_progress(state, pool_id, "draining", lambda: client.drain_pool(pool_id, deadline_ms=deadline_ms))
    _report(state, result)


@app.command("reload")
def reload(
    ctx: typer.Context,
    pool_id: PoolId,
    model_ref: Annotated[
        str, typer.Argument(help="The model to serve (file:/path.gguf, mock:name…).", show_default=False)
    ],
    deadline_ms: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Time for the new model to load and pass health checks (server default 60000).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Switch a pool to another model atomically (rolled back on failure); waits until done."""
    state = state_of(ctx)
    state.use_json(json_out)
    client = state.client()
    result = _with_progress(
        state, pool_id, "reloading", lambda: client.reload_pool(pool_id, model_ref, deadline_ms=deadline_ms)
    )
    _report(state, result)
