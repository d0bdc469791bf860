"""``llama-orch submit PROMPT``: stream a task's tokens; Ctrl-C cancels it on the server."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Annotated

import typer
from rich.status import Status

from llama_orch.cli._errors import CliError
from llama_orch.cli._state import JsonFlag, State, state_of
from llama_orch.client import LlamaOrchError, TaskEvent
from llama_orch_api import Determinism, EndEvent, MetricsEvent, Priority, StartedEvent, TaskRequest, TokenEvent


def _prompt(text: str) -> str:
    if text != "-":
        return text
    data = sys.stdin.read()
    if not data:
        raise CliError("the prompt is empty (read from standard input because PROMPT is '-')")
    return data


def submit(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt; '-' reads it from standard input.", show_default=False)],
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Tokens to generate at most.", show_default=False)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Sampling seed (reproducible output).", show_default=False)
    ] = None,
    session: Annotated[str | None, typer.Option(help="Session id (KV reuse, budgets).", show_default=False)] = None,
    priority: Annotated[Priority, typer.Option(help="Queue class.")] = Priority.interactive,
    pool: Annotated[str | None, typer.Option(help="Run on this pool only.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(help="The model wanted (model_ref).", show_default=False)] = None,
    engine: Annotated[str | None, typer.Option(help="The engine wanted.", show_default=False)] = None,
    determinism: Annotated[Determinism | None, typer.Option(help="strict or best_effort.", show_default=False)] = None,
    sampler_profile: Annotated[
        str | None, typer.Option(help="Sampler profile, e.g. llorch/balanced@1.", show_default=False)
    ] = None,
    deadline_ms: Annotated[
        int | None, typer.Option(min=1, help="The task must start within this many ms.", show_default=False)
    ] = None,
    task_id: Annotated[
        str | None, typer.Option(help="Choose the task's id (default: generated).", show_default=False)
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Submit a task and stream its tokens to stdout; progress goes to stderr.

    With --json, stdout gets one JSON object per line: first {"event": "admitted", "data": <AdmissionResponse>},
    then every stream event as {"event", "id", "data"}. Ctrl-C cancels the task on the server and exits 130.
    """
    state = state_of(ctx)
    state.use_json(json_out)
    fields: dict[str, object] = {
        "prompt": _prompt(prompt),
        "max_tokens": max_tokens,
        "seed": seed,
        "session_id": session,
        "priority": priority,
        "pool": pool,
        "model_ref": model,
        "engine": engine,
        "determinism": determinism,
        "sampler_profile_version": sampler_profile,
        "deadline_ms": deadline_ms,
    }
    # A client-chosen id lets Ctrl-C cancel the task even when it lands during the admission itself.
    request = TaskRequest(
        task_id=task_id or f"cli-{os.urandom(8).hex()}", **{k: v for k, v in fields.items() if v is not None}
    )
    assert request.task_id is not None
    client = state.client()
    try:
        _run(state, request)
    except KeyboardInterrupt:
        with contextlib.suppress(LlamaOrchError):
            client.cancel(request.task_id, timeout=5)
        if not state.json:
            state.err.print(f"\ncancelled task {request.task_id}", style="yellow", markup=False)
        raise


def _run(state: State, request: TaskRequest) -> None:
    client = state.client()
    with client.submit(request) as task:
        admission = task.admission
        if state.json:
            line = {"event": "admitted", "id": None, "data": admission.model_dump(mode="json")}
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        else:
            state.note(
                f"task {admission.task_id} queued on pool {admission.pool} at position {admission.queue_position}, "
                f"predicted start in {admission.predicted_start_ms} ms"
            )
        with state.spinner(f"waiting: position {admission.queue_position}") as spinner:
            tail = ""
            for event in task.stream():
                if state.json:
                    sys.stdout.write(event.to_json() + "\n")
                    sys.stdout.flush()
                    continue
                tail = _show(state, event, spinner, tail)


def _show(state: State, event: TaskEvent, spinner: Status | None, tail: str) -> str:
    """Render one event for humans; returns the last text written to stdout."""
    data = event.data
    if isinstance(data, TokenEvent):
        if spinner is not None:
            spinner.stop()
        sys.stdout.write(data.t)
        sys.stdout.flush()
        return data.t or tail
    if isinstance(data, MetricsEvent) and spinner is not None and data.queue_position is None and data.tokens_out == 0:
        spinner.update(f"waiting: {data.queue_depth} queued on the pool")
    elif isinstance(data, StartedEvent):
        if spinner is not None:
            spinner.stop()
        state.note(f"started on {data.replica} after {data.waited_ms} ms")
    elif isinstance(data, EndEvent):
        if tail and not tail.endswith("\n"):
            sys.stdout.write("\n")
            sys.stdout.flush()
        state.note(f"{data.tokens_out} tokens in {data.decode_time_ms} ms ({data.finish_reason})")
    return tail
