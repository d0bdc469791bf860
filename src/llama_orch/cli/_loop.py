"""The auto-programmer's commands: ``plan``, ``contract sync``, ``tests plan``, ``impl apply``,
``loop run``, ``trace`` and ``replay`` (a thin layer over :mod:`llama_orch.agents`).

Every loop command takes ``--repo PATH`` (default: the current directory), ``--budget-tokens``,
``--budget-time``, ``--budget-cost``, ``--agents auto|N`` and ``--json``, plus the global
``--base-url`` and ``--token``. A run ends with its traceability matrix; ``--json`` prints the run's
summary (items done/failed, tokens spent, merged commits, artifact ids) as one JSON object.
Exit status 0 when the plan is done, 9 when the run ended with work left (budget spent, stalled,
items failed), and the usual codes for bad input (2), an unreachable (6) or incompatible (7)
server; Ctrl-C cancels the run's tasks on the server, keeps its state and exits 130.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llama_orch.agents import (
    LoopOptions,
    LoopRun,
    ReplayReport,
    RunSummary,
    TraceMatrix,
    list_runs,
    plan_only,
    replay,
    repo_trace,
    run_loop,
)
from llama_orch.agents._plan import ItemKind
from llama_orch.cli._errors import CliError, ExitCode
from llama_orch.cli._loop_view import LoopView, matrix_table, plan_table
from llama_orch.cli._state import JsonFlag, State, state_of
from llama_orch.client import AsyncClient

RepoOpt = Annotated[
    Path, typer.Option("--repo", help="The repository to work in (default: the current directory).", show_default=False)
]
BudgetTokens = Annotated[
    int | None, typer.Option("--budget-tokens", min=1, help="Output tokens the run may use.", show_default=False)
]
BudgetTime = Annotated[
    float | None,
    typer.Option("--budget-time", min=0.001, help="Seconds the run may take (across resumes).", show_default=False),
]
BudgetCost = Annotated[
    float | None,
    typer.Option("--budget-cost", min=0, help="Cost the run may spend (pools' price per token).", show_default=False),
]
AgentsOpt = Annotated[str, typer.Option("--agents", help="Agents at once: 'auto' (from the pools' slots) or a number.")]

contract_app = typer.Typer(help="Contracts for the requirements (OpenAPI / JSON Schema / Pact).", no_args_is_help=True)
tests_app = typer.Typer(help="Tests for the requirements.", no_args_is_help=True)
impl_app = typer.Typer(help="Code for the requirements.", no_args_is_help=True)
loop_app = typer.Typer(help="The whole loop: contracts, tests and code, continuously.", no_args_is_help=True)


def _agents(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise CliError(f"--agents must be 'auto' or a positive number, not {value!r}")
    return n


def _options(
    state: State, repo: Path, agents: str, tokens: int | None, time_s: float | None, cost: float | None, **more: Any
) -> LoopOptions:
    return LoopOptions(
        repo=repo, base_url=state.base_url, token=state.token, timeout=state.timeout,
        agents=_agents(agents),  # type: ignore[arg-type]
        budget_tokens=tokens, budget_time_s=time_s, budget_cost=cost, **more,
    )  # fmt: skip


def plan(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    budget_tokens: BudgetTokens = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    agents: AgentsOpt = "auto",
    json_out: JsonFlag = False,
) -> None:
    """Plan work items per requirement (contract, test, code) in waves, from the specs and their traceability.

    Reads the spec, contracts, tests and commit trailers at the integration branch (or HEAD), runs
    the tests there, and stores the plan as an artifact. Changes nothing in the repository."""
    state = state_of(ctx)
    as_json = state.use_json(json_out)
    options = _options(state, repo, agents, budget_tokens, budget_time, budget_cost)
    with state.spinner("planning: reading the specs and running the tests"):
        result, artifact, _ = asyncio.run(plan_only(options))
    if as_json:
        sys.stdout.write(json.dumps({"artifact": artifact, "plan": result.model_dump(mode="json")}) + "\n")
        return
    state.out.print(plan_table(result))
    counts = result.counts()
    state.out.print(
        f"{len(result.items)} work items ({counts['contract']} contract, {counts['test']} test, {counts['code']} code) "
        f"in {len(result.waves)} waves; {len(result.done)} requirement(s) need nothing; tests at the base: "
        f"{result.tests_status}; plan artifact {artifact}",
        markup=False, highlight=False,
    )  # fmt: skip
    for warning in result.warnings:
        state.err.print(f"warning: {warning}", style="yellow", markup=False)


def _run(state: State, options: LoopOptions) -> None:
    _finish(state, _run_summary(state, options))


def _run_summary(state: State, options: LoopOptions) -> RunSummary:
    """Run the loop with its live view (the summary is not printed)."""
    view = LoopView(state)

    def started(run: LoopRun) -> None:
        view.attach(run)

    try:
        return asyncio.run(run_loop(options, on_start=started))
    finally:
        view.close()


def _finish(state: State, summary: RunSummary, *, exit_incomplete: bool = True) -> None:
    data = summary.to_json()
    if state.json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()
    else:
        state.out.print(matrix_table(_matrix_from(data["trace"])))
        items = data["items"]
        state.out.print(
            f"run {summary.run_id}: {summary.status} — {summary.reason}. "
            f"{items['done']}/{items['total']} items merged, {items['failed']} failed, {items['blocked']} blocked; "
            f"{data['tokens_spent']} tokens, "
            f"{data['model_calls']} model calls, {len(data['merged_commits'])} merges into "
            f"{data['integration_branch']} ({data['integration_head'][:12]}); {data['elapsed_s']:.1f} s",
            markup=False, highlight=False,
        )  # fmt: skip
        pr = data.get("pull_request")
        if pr:
            state.out.print(f"pull request: {pr.get('url') or pr.get('why')} (description {pr.get('artifact')})",
                            markup=False, highlight=False)  # fmt: skip
        if not summary.complete:
            state.err.print(f"resume with: llama-orch loop run --resume {summary.run_id}", style="yellow", markup=False)
    if not summary.complete and exit_incomplete:
        raise typer.Exit(ExitCode.INCOMPLETE)


def _stage(
    ctx: typer.Context, stages: tuple[ItemKind, ...], command: str, repo: Path, agents: str, tokens: int | None,
    time_s: float | None, cost: float | None, json_out: bool, **more: Any,
) -> None:  # fmt: skip
    state = state_of(ctx)
    state.use_json(json_out)
    _run(state, _options(state, repo, agents, tokens, time_s, cost, stages=stages, command=command, **more))


@contract_app.command("sync")
def contract_sync(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    budget_tokens: BudgetTokens = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    agents: AgentsOpt = "auto",
    json_out: JsonFlag = False,
) -> None:
    """Agents draft contracts (JSON Schema / OpenAPI with x-req-id, Pact), validated, merged through gates."""
    _stage(ctx, ("contract",), "contract sync", repo, agents, budget_tokens, budget_time, budget_cost, json_out)


@tests_app.command("plan")
def plan_tests(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    budget_tokens: BudgetTokens = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    agents: AgentsOpt = "auto",
    json_out: JsonFlag = False,
) -> None:
    """Agents propose tests citing their requirements; one is merged only if it fails today for the right reason."""
    _stage(ctx, ("test",), "tests plan", repo, agents, budget_tokens, budget_time, budget_cost, json_out)


@impl_app.command("apply")
def impl_apply(
    ctx: typer.Context,
    attempts: Annotated[
        int | None, typer.Option("--attempts", min=1, max=16, help="Best of K proposals per item.", show_default=False)
    ] = None,
    pr: Annotated[
        bool, typer.Option("--pr", help="Push the integration branch and open a pull request (else a description).")
    ] = False,
    repo: RepoOpt = Path("."),
    budget_tokens: BudgetTokens = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    agents: AgentsOpt = "auto",
    json_out: JsonFlag = False,
) -> None:
    """Agents write code against the failing tests; gated on the merged tree, merged through the queue."""
    _stage(ctx, ("code",), "impl apply", repo, agents, budget_tokens, budget_time, budget_cost, json_out,
           attempts=attempts, pr=pr)  # fmt: skip


@loop_app.command("run")
def loop_run(
    ctx: typer.Context,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue this run (RUN_ID) from its state.", show_default=False)
    ] = None,
    attempts: Annotated[
        int | None, typer.Option("--attempts", min=1, max=16, help="Best of K proposals per item.", show_default=False)
    ] = None,
    repo: RepoOpt = Path("."),
    budget_tokens: BudgetTokens = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    agents: AgentsOpt = "auto",
    json_out: JsonFlag = False,
) -> None:
    """Run the loop: contracts, tests and code flow to agents until the plan is done, the budget is spent, or it
    stalls."""
    _stage(ctx, ("contract", "test", "code"), "loop run", repo, agents, budget_tokens, budget_time, budget_cost,
           json_out, resume=resume, attempts=attempts)  # fmt: skip


def trace(ctx: typer.Context, repo: RepoOpt = Path("."), json_out: JsonFlag = False) -> None:
    """The traceability matrix: requirement → contract → test → commit → gate result (integration branch or HEAD)."""
    state = state_of(ctx)
    matrix = asyncio.run(repo_trace(repo))
    if state.use_json(json_out):
        sys.stdout.write(json.dumps(matrix.to_json()) + "\n")
        return
    state.out.print(matrix_table(matrix))
    if matrix.unknown:
        state.err.print(f"cited but stated nowhere: {', '.join(matrix.unknown)}", style="yellow", markup=False)


def _journals(repo: Path) -> list[Path]:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                          capture_output=True, text=True, check=False, timeout=30)  # fmt: skip
    if done.returncode != 0:
        return []
    return [r.artifacts_dir for r in list_runs(Path(done.stdout.strip()) / "llorch")]


def replay_cmd(
    ctx: typer.Context,
    artifact: Annotated[str, typer.Argument(help="A recorded model call: its prompt or response artifact id.")],
    repo: RepoOpt = Path("."),
    json_out: JsonFlag = False,
) -> None:
    """Re-issue a recorded model call (seed, sampler profile, model, engine) and report identical or the first
    differing token (exit 10 when it differs)."""
    state = state_of(ctx)
    as_json = state.use_json(json_out)

    async def go() -> ReplayReport:
        async with AsyncClient(state.base_url, token=state.token, timeout=state.timeout) as client:
            return await replay(client, artifact, journals=_journals(repo))

    report = asyncio.run(go())
    if as_json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
    else:
        rec = report.recorded
        facts = (f"seed {rec.get('seed')}, sampler {rec.get('sampler_profile_version')}, engine {rec.get('engine')} "
                 f"{rec.get('engine_version')}, model {rec.get('model_ref')}"
                 + (f" ({rec['model_digest']})" if rec.get("model_digest") else ""))  # fmt: skip
        if report.identical:
            state.out.print(f"identical: {report.tokens_now} tokens ({facts}); replayed as {report.replay_task_id}",
                            markup=False, highlight=False)  # fmt: skip
        else:
            state.out.print(
                f"differs at token {report.first_difference}: recorded {report.recorded_token!r}, now "
                f"{report.replayed_token!r} ({report.tokens_recorded} recorded, {report.tokens_now} now; {facts})",
                markup=False, highlight=False,
            )  # fmt: skip
        for note in report.notes:
            state.err.print(f"note: {note}", style="yellow", markup=False)
    if not report.identical:
        raise typer.Exit(ExitCode.DIFFERENT)


def _matrix_from(data: dict[str, Any]) -> TraceMatrix:
    return TraceMatrix.model_validate({k: v for k, v in data.items() if k in ("commit", "rows", "unknown")})
