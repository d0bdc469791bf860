"""``llama-orch contract verify``: the committed Pact against a live orchestratord (OC-CLI-2603).

The pact ``contracts/pacts/llama-orch-cli-orchestratord.json`` says what this CLI (consumer
``llama-orch-cli``) expects of orchestratord (provider). The project verifies it in CI against
fresh servers; this command lets an operator check their own deployment (``--base-url``,
``--token``): each interaction's request is sent as recorded and its answer matched
(:mod:`llama_orch.cli._pact`).

Provider states: an interaction that needs one is run only when the state can be reached through
the public API (a finished task ``t-1``, a session ``s-1``, the stored plan artifact); they are
set up before it. States that need a server configured for them (a full queue, a draining pool,
a 1 KiB body limit, a model file on the server's disk...) are reported as skipped, never failed.

Like the consumer, verification writes: tasks, a session, an artifact and a catalog entry
(``tiny-q4``); on a server that already has them from an earlier run, the creating interactions
answer differently (a catalog entry that exists is ``409``). Run it against a fresh server, or
read those mismatches with that in mind.

Exit status: 0 every interaction run passed, 1 a mismatch, 2 the pact file cannot be used or the
server cannot be reached.
"""

from __future__ import annotations

import importlib.resources
import json
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.text import Text

from llama_orch.cli._errors import CliError, ExitCode
from llama_orch.cli._pact import Outcome, PactFileError, ProviderUnreachableError, load_pact, replay
from llama_orch.cli._state import JsonFlag, State, state_of
from llama_orch.client import Client, RetryPolicy, TaskExistsError

PACT_NAME = "llama-orch-cli-orchestratord.json"

# The provider states of the committed pact that the public API can put a server into (the names
# are the consumer tests', tests/contract/_pact.py).
TASK_FINISHED = "task t-1 has finished"
SESSION_EXISTS = "session s-1 exists"
PLAN_STORED = "the plan artifact is stored"
PLAN_CONTENT = "# Plan\n1. write the contract\n2. verify it"
PLAN_TAGS = ["loop:1"]


def default_pact() -> Path:
    """The committed pact: shipped inside the package (wheel), else the source tree's."""
    shipped = importlib.resources.files("llama_orch.cli").joinpath("pacts", PACT_NAME)
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[3] / "contracts" / "pacts" / PACT_NAME


def _task_finished(client: Client) -> None:
    with suppress(TaskExistsError):
        client.create_task(task_id="t-1", prompt="hello", max_tokens=3, seed=7)
    events = list(client.stream("t-1"))
    if not events or events[-1].event != "end":
        raise RuntimeError(f"task t-1 did not end well: {events[-1].event if events else 'no events'}")


def _session_exists(client: Client) -> None:
    client.run(session_id="s-1", prompt="hello", max_tokens=3, seed=7)


def _plan_stored(client: Client) -> None:
    client.put_artifact(kind="plan", content=PLAN_CONTENT, tags=list(PLAN_TAGS))


API_STATES: dict[str, Callable[[Client], None]] = {
    TASK_FINISHED: _task_finished,
    SESSION_EXISTS: _session_exists,
    PLAN_STORED: _plan_stored,
}


def _reachable(base_url: str, token: str | None, timeout: float) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        httpx.get(base_url.rstrip("/") + "/v1/capabilities", headers=headers, timeout=timeout)
    except httpx.InvalidURL as exc:
        raise CliError(f"--base-url {base_url!r} is not a URL: {exc}", hint="e.g. http://127.0.0.1:8080") from None
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach orchestratord at {base_url}: {type(exc).__name__}: {exc}",
            exit_code=ExitCode.USAGE,
            hint="point --base-url / LLORCH_BASE_URL at a running orchestratord",
        ) from None


def _print(state: State, outcome: Outcome) -> None:
    label, style = {"passed": ("PASS", "green"), "failed": ("FAIL", "bold red"), "skipped": ("SKIP", "yellow")}[
        outcome.result
    ]
    line = Text.assemble((f"{label} ", style), outcome.description)
    if outcome.result == "skipped":
        line.append(f"  (skipped: {outcome.reason})", style="dim")
    state.out.print(line, highlight=False)
    for mismatch in outcome.mismatches:
        state.out.print(Text(f"     {mismatch}"), highlight=False)


def verify(
    ctx: typer.Context,
    pact: Annotated[
        Path | None,
        typer.Option("--pact", help="The pact file (default: the committed one this CLI ships).", show_default=False),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Check the committed Pact (what this CLI expects of orchestratord) against the server at --base-url.

    Each interaction: PASS, FAIL with its mismatches, or SKIP when it needs a provider state the
    server cannot be put into through its API. Exit 0: all run passed; 1: a mismatch; 2: the pact
    file cannot be used or the server cannot be reached.
    """
    state = state_of(ctx)
    as_json = state.use_json(json_out)
    path = pact if pact is not None else default_pact()
    try:
        meta, interactions = load_pact(path)
    except PactFileError as exc:
        raise CliError(str(exc), exit_code=ExitCode.USAGE, hint="--pact names a Pact v2/v3 JSON file") from None
    _reachable(state.base_url, state.token, state.timeout)
    client = Client(
        state.base_url, token=state.token, timeout=state.timeout, retry=RetryPolicy(max_attempts=1), limiter=None
    )
    setups = {name: (lambda setup=setup: setup(client)) for name, setup in API_STATES.items()}
    if not as_json:
        state.note(f"verifying {path} ({len(interactions)} interactions) against {state.base_url}")
    try:
        outcomes = replay(
            interactions,
            state.base_url,
            token=state.token,
            timeout=state.timeout,
            setups=setups,
            on_outcome=None if as_json else (lambda outcome: _print(state, outcome)),
        )
    except ProviderUnreachableError as exc:
        raise CliError(str(exc), exit_code=ExitCode.USAGE, hint="is orchestratord still running?") from None
    except PactFileError as exc:
        raise CliError(str(exc), exit_code=ExitCode.USAGE, hint="--pact names a Pact v2/v3 JSON file") from None
    finally:
        client.close()
    counts = {kind: sum(1 for o in outcomes if o.result == kind) for kind in ("passed", "failed", "skipped")}
    if as_json:
        doc = {
            "pact": str(path),
            "base_url": state.base_url,
            **meta,
            **counts,
            "interactions": [o.as_json() for o in outcomes],
        }
        sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    else:
        style = "bold red" if counts["failed"] else "green"
        state.out.print(
            Text(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped", style=style),
            highlight=False,
        )
    if counts["failed"]:
        raise typer.Exit(ExitCode.FAILURE)
