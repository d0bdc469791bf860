"""The loop: plan, then let work items flow to role agents until the plan is done, the budget spent,
or progress stalls.

A run (``loop run``, or one stage: ``contract sync``, ``tests plan``, ``impl apply``) goes:

1. **Checks that touch nothing**: a git repository with a commit and a clean tree, the loop
   configuration read at HEAD, an integration branch that has not diverged, specs with unique ids,
   a reachable orchestratord of a compatible API version. Any failure ends the command here, with
   the repository exactly as it was.
2. **Plan** from the base commit (:mod:`._planner`), stored as a ``plan`` artifact, one child
   artifact per work item.
3. **Flow**: items whose dependencies are merged start at once, up to ``agents`` at a time (each
   attempt of a best-of-K item counts as one); an item's round is :meth:`._stages.ItemRunner.run_round`.
   A rejected round is tried again with the rejection as feedback, up to ``max_tries`` rounds; then
   the item has failed and what depends on it is blocked. The same failure ``stall_after`` times in a
   row stops the run (``stalled``); so does the budget (``stopped``).
4. **End**: the traceability matrix of the integration head, stored as an artifact and returned
   with the summary; ``--pr`` pushes the integration branch and opens a pull request.

``agents="auto"`` is the pools' slots plus half again (so slots stay busy while agents apply,
commit and wait for gates), and the SDK's adaptive limiter, started at the slot count and capped by
what the pools can hold, shrinks what is really in flight when orchestratord answers 429.

**Resume** (``resume=RUN_ID``): the plan is made again from the integration head, so merged work is
simply not in it; server tasks the dead CLI left running are cancelled; a candidate committed but
never decided is merged from its recorded commit without a model call; stale worktrees are removed;
rounds already spent count. **Interrupt** (Ctrl-C, task cancellation): in-flight tasks are cancelled
on the server, the state is kept, and the run can be resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llama_orch.agents._artifacts_client import AgentArtifacts
from llama_orch.agents._gates import GateConfigError, load_gates_at
from llama_orch.agents._git import Git
from llama_orch.agents._loop_config import CONFIG_FILE, LoopConfig, LoopConfigError, load_loop_config
from llama_orch.agents._loop_gates import LoopGates
from llama_orch.agents._loop_model import BudgetSpent, LoopModel, RunBudget
from llama_orch.agents._loop_repo import Repo, open_repo, snapshot
from llama_orch.agents._merge import MergeQueue
from llama_orch.agents._plan import KINDS, ItemKind, Plan, WorkItem
from llama_orch.agents._planner import PlanResult, plan_repository, read_spec
from llama_orch.agents._pr import open_pull_request
from llama_orch.agents._runstate import RunState, list_runs, repo_lock
from llama_orch.agents._stages import ItemRunner, RoundResult, StageEnv
from llama_orch.agents._trace import scan_commits
from llama_orch.agents._trace_contracts import scan_contracts
from llama_orch.agents._trace_matrix import TraceMatrix, build_matrix, gates_by_commit
from llama_orch.agents._trace_model import build_trace_index
from llama_orch.agents._trace_tests import scan_tests
from llama_orch.agents._workspace import WorkspaceManager
from llama_orch.client import DEFAULT_BASE_URL, AdaptiveLimiter, AsyncClient, LlamaOrchError, RetryPolicy
from llama_orch_api import Capabilities

__all__ = [
    "LoopOptions",
    "LoopRun",
    "Prepared",
    "RunSummary",
    "auto_agents",
    "plan_only",
    "prepare",
    "repo_trace",
    "run_loop",
]

log = logging.getLogger("llama_orch.agents.loop")

Agents = int | Literal["auto"]
STATUS_EVERY_S = 0.5


@dataclass(frozen=True)
class LoopOptions:
    """What a loop command was asked to do (the CLI's flags)."""

    repo: Path = Path(".")
    base_url: str = DEFAULT_BASE_URL
    token: str | None = None
    timeout: float = 30.0
    stages: tuple[ItemKind, ...] = KINDS
    command: str = "loop run"
    agents: Agents = "auto"
    budget_tokens: int | None = None
    budget_time_s: float | None = None
    budget_cost: float | None = None
    attempts: int | None = None
    resume: str | None = None
    pr: bool = False


@dataclass
class Prepared:
    """The result of the read-only checks, and the plan."""

    repo: Repo
    config: LoopConfig
    config_source: str | None
    capabilities: Capabilities
    planned: PlanResult
    spec_files: list[str]
    gates: LoopGates


@dataclass
class RunSummary:
    run_id: str
    command: str
    status: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "done"

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "command": self.command, "status": self.status, "reason": self.reason,
                **self.data}  # fmt: skip


def auto_agents(capabilities: Capabilities, pools: set[str] | None = None) -> tuple[int, int]:
    """``(agents, slots)`` to start ``--agents auto`` with (see the module docstring)."""
    chosen = [p for p in capabilities.pools if not pools or p.id in pools]
    slots = sum(p.concurrency for p in chosen)
    queue = sum(p.queue_capacity for p in chosen)
    if slots <= 0:
        return 1, 0
    return max(1, min(slots + math.ceil(slots / 2), slots + queue)), slots


def auto_resize(slots: int, ceiling: int, floor: int, model_fraction: float | None) -> int:
    """Agents that keep ``slots`` busy when each spends ``model_fraction`` of its rounds in model calls.

    An agent is in a model call only part of its round (it also applies, commits, waits for the
    merge queue), so ``slots / fraction`` agents keep the slots full; one more absorbs the jitter.
    Bounded by ``floor`` (the starting size) and ``ceiling`` (slots plus queue places: beyond that
    the backend would answer 429).

    >>> auto_resize(4, 100, 6, 0.5), auto_resize(4, 100, 6, 1.0), auto_resize(4, 10, 6, 0.1)
    (9, 6, 10)
    """
    if model_fraction is None or model_fraction <= 0:
        return floor
    return max(floor, min(ceiling, math.ceil(slots / min(1.0, model_fraction)) + 1))


async def _show(git: Git, rev: str, path: str) -> str | None:
    result = await git("show", f"{rev}:{path}", check=False)
    return result.stdout if result.returncode == 0 else None


async def prepare(options: LoopOptions, *, run_tests: bool = True) -> Prepared:
    """Every check that must pass before anything is touched, then the plan (see the module docstring)."""
    repo = await open_repo(options.repo, integration_branch=LoopConfig().integration_branch)
    config, source = load_loop_config(
        {"pyproject.toml": await _show(repo.git, repo.head, "pyproject.toml"),
         CONFIG_FILE: await _show(repo.git, repo.head, CONFIG_FILE)}
    )  # fmt: skip
    if config.integration_branch != repo.integration_branch:
        repo = await open_repo(repo.root, integration_branch=config.integration_branch)
    try:
        declared = await load_gates_at(repo.git, repo.head)
    except GateConfigError as exc:
        raise LoopConfigError(str(exc)) from None
    async with AsyncClient(options.base_url, token=options.token, timeout=options.timeout, limiter=None) as probe:
        caps = await probe.capabilities()
    served = {p.id for p in caps.pools}
    for role, settings in config.roles.items():
        if settings.pool is not None and settings.pool not in served:
            raise LoopConfigError(
                f"roles.{role.value}.pool: {settings.pool!r} is not served here (pools: {', '.join(sorted(served))})"
            )
    if not caps.pools:
        raise LoopConfigError(f"{options.base_url} serves no pool: nothing could answer the agents")
    gate_specs = declared or config.gate_specs()
    planned = await plan_repository(repo.git, repo.base, config, run_tests=run_tests)
    # Contract items write under `contracts`; the contracts gate validates whatever is there.
    gates = LoopGates(config, gate_specs, has_contracts=bool(config.contracts))
    return Prepared(repo, config, source, caps, planned, list(planned.spec_files), gates)


async def plan_only(options: LoopOptions) -> tuple[Plan, str, Prepared]:
    """``llama-orch plan``: the plan and the id of its artifact (stored on the server, else locally)."""
    prep = await prepare(options)
    async with AsyncClient(options.base_url, token=options.token, timeout=options.timeout, limiter=None) as client:
        record = AgentArtifacts(client, prep.repo.llorch_dir / "plans")
        plan = prep.planned.plan.only(options.stages)
        stored = await record.plan(_json(plan.model_dump(mode="json")), parent=None,
                                   tags=[f"base:{plan.base[:12]}", "llorch:plan"])  # fmt: skip
    return plan, stored.id, prep


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


async def repo_trace(repo_path: Path) -> TraceMatrix:
    """``llama-orch trace``: the matrix of the integration head (or HEAD), with the loop's gate results."""
    repo = await open_repo(repo_path, integration_branch=LoopConfig().integration_branch, require_clean=False)
    config, _ = load_loop_config(
        {"pyproject.toml": await _show(repo.git, repo.head, "pyproject.toml"),
         CONFIG_FILE: await _show(repo.git, repo.head, CONFIG_FILE)}
    )  # fmt: skip
    if config.integration_branch != repo.integration_branch:
        repo = await open_repo(repo.root, integration_branch=config.integration_branch, require_clean=False)
    return await _matrix(repo.git, repo.base, config, repo.llorch_dir)


async def _matrix(git: Git, commit: str, config: LoopConfig, llorch_dir: Path) -> TraceMatrix:
    with tempfile.TemporaryDirectory(prefix="llorch-trace-") as tmp:
        root = await snapshot(git, commit, Path(tmp))
        spec, _, _ = read_spec(root, config)
        citations = scan_contracts([root / p for p in config.contracts if (root / p).exists()], root, config.id_pattern)
        citations += scan_tests([root / p for p in config.tests if (root / p).exists()], root, spec.ids,
                                config.id_pattern)  # fmt: skip
        citations += scan_commits(git.cwd, [commit], id_pattern=config.id_pattern)
        index = build_trace_index(spec, citations)
    gates: dict[str, list[str]] = {}
    for run in list_runs(llorch_dir):
        gates.update(gates_by_commit(run.events()))
    return build_matrix(index, commit, gates)


# -- the run ----------------------------------------------------------------------------------------


class LoopRun:
    """One run of the loop, from prepared checks to its summary (see the module docstring)."""

    def __init__(self, options: LoopOptions, prep: Prepared) -> None:
        self.options = options
        self.prep = prep
        self.config = prep.config if options.attempts is None else prep.config.model_copy(
            update={"attempts": options.attempts})  # fmt: skip
        self.state: RunState | None = None
        self.env: StageEnv | None = None
        self.states: dict[str, str] = {}
        self.rounds: dict[str, int] = {}
        self.reasons: dict[str, str] = {}
        self.merged_commits: list[str] = []
        self.budget = RunBudget()
        self.agents = 1
        self.slots = 0
        self.plan: Plan | None = None
        self.stop_reason: tuple[str, str] | None = None
        self._last_status = 0.0
        self.on_update: Callable[[LoopRun], None] | None = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every event of the run (the CLI's progress lines)."""
        self.stages: tuple[ItemKind, ...] = options.stages
        self.fast_path = 0
        self.model_calls = 0
        self.ceiling = self.auto_floor = self.agents_peak = 1
        self.round_seconds = 0.0
        self.client: AsyncClient | None = None

    # -- set-up ----------------------------------------------------------------------------------

    def _budget(self, info: dict[str, Any]) -> RunBudget:
        o, b = self.options, self.config.budget
        limits = info.get("budget", {})
        return RunBudget(
            tokens_limit=o.budget_tokens if o.budget_tokens is not None else limits.get("tokens", b.tokens),
            time_limit_s=o.budget_time_s if o.budget_time_s is not None else limits.get("time_s", b.time_s),
            cost_limit=o.budget_cost if o.budget_cost is not None else limits.get("cost", b.cost),
        )

    async def run(self) -> RunSummary:
        prep, options = self.prep, self.options
        llorch = prep.repo.llorch_dir
        if options.resume:
            state = RunState.open(llorch, options.resume)
            info = state.info()
            info.setdefault("segments", 0)
            info["segments"] += 1
            self.stages = tuple(s for s in info.get("stages", KINDS) if s in KINDS)
        else:
            state = None
            info = {
                "command": options.command, "stages": list(options.stages), "base": prep.repo.base,
                "head": prep.repo.head, "integration_branch": prep.repo.integration_branch,
                "repo": str(prep.repo.root), "base_url": options.base_url, "segments": 1,
            }  # fmt: skip
        self.budget = self._budget(info)
        info["budget"] = {"tokens": self.budget.tokens_limit, "time_s": self.budget.time_limit_s,
                          "cost": self.budget.cost_limit}  # fmt: skip
        if options.agents == "auto":
            pools = {r.pool for r in self.config.roles.values() if r.pool} or None
            self.agents, self.slots = auto_agents(prep.capabilities, pools)
        else:
            self.agents, self.slots = max(1, options.agents), auto_agents(prep.capabilities)[1]
        info["agents"] = {"requested": options.agents, "agents": self.agents, "slots": self.slots}
        if state is None:
            state = RunState.create(llorch, info)
            info["session_id"] = f"llorch-{state.run_id}"
            state.write_info({**state.info(), **info})
        else:
            state.write_info(info)
        self.state = state
        state.listeners.extend(self.listeners)
        session_id = state.info().get("session_id") or f"llorch-{state.run_id}"
        events = state.events()
        self.budget.elapsed_before_s = float((state.status() or {}).get("budget", {}).get("elapsed_s") or 0.0)
        self.budget.tokens_used = sum(int(e.get("tokens_out", 0)) for e in events if e.get("event") == "call-finished")
        state.append("run-started", command=options.command, segment=info["segments"], agents=self.agents,
                     slots=self.slots, base=prep.repo.base, resume=bool(options.resume))  # fmt: skip
        self.ceiling = self.auto_floor = self.agents_peak = self.agents
        if options.agents == "auto":
            self.ceiling = max(self.agents, sum(p.concurrency + p.queue_capacity for p in prep.capabilities.pools))
        limiter = AdaptiveLimiter(initial=max(1, min(self.agents, max(self.slots, 1))), max_limit=max(self.ceiling, 1))
        client = AsyncClient(
            options.base_url, token=options.token, timeout=options.timeout, limiter=limiter,
            retry=RetryPolicy(max_attempts=10, base_delay_s=0.2, max_delay_s=5.0),
        )  # fmt: skip
        self.client = client
        try:
            return await self._run(state, session_id, client, events)
        finally:
            await client.aclose()
            state.close()

    async def _run(
        self, state: RunState, session_id: str, client: AsyncClient, events: list[dict[str, Any]]
    ) -> RunSummary:
        prep = self.prep
        repo = prep.repo
        caps = await client.capabilities()
        await self._server_usage(client, session_id)
        manager = WorkspaceManager(repo.root, integration_branch=repo.integration_branch)
        await manager.open(base=repo.head)
        if repo.integration_head is None:
            # The integration branch is behind HEAD (the caller merged it) or new: it starts at HEAD.
            current = await manager.git.rev(manager.integration_ref)
            if current is not None and current != repo.head:
                await manager.git("update-ref", manager.integration_ref, repo.head, current)
        artifacts = AgentArtifacts(client, state.artifacts_dir, session_id=session_id)
        model = LoopModel(
            client, artifacts, self.budget, caps, run_id=state.run_id, session_id=session_id, record=state.append,
            determinism=self.config.determinism, on_tokens=self._tokens,
        )  # fmt: skip
        counter = itertools.count(sum(1 for e in events if e.get("event") == "agent-started") + 1)
        queue = MergeQueue(manager, artifacts=artifacts, gates=prep.gates.specs, runner=prep.gates.runner,
                           run_id=state.run_id)  # fmt: skip
        restored = await self._housekeeping(manager, model, events)
        plan = prep.planned.plan.only(self.stages)
        self.plan = plan
        parent = state.info().get("plan_artifact")
        stored = await artifacts.plan(_json(plan.model_dump(mode="json")), parent=parent,
                                      tags=[f"run:{state.run_id}", "llorch:plan"])  # fmt: skip
        state.write_info({**state.info(), "plan_artifact": stored.id})
        state.append("plan", artifact=stored.id, items=len(plan.items), counts=plan.counts(), done=plan.done,
                     warnings=plan.warnings)  # fmt: skip
        item_artifacts: dict[str, str] = {}
        for item in plan.items:
            art = await artifacts.put("plan", _json({"work_item": item.model_dump(mode="json")}), parent=stored.id,
                                      tags=["agent:work-item", f"item:{item.id}", f"run:{state.run_id}"])  # fmt: skip
            item_artifacts[item.id] = art.id
        open_reqs = {r for it in plan.items if it.kind == "code" for r in it.requirements}
        self.env = StageEnv(
            config=self.config, manager=manager, queue=queue, gates=prep.gates, model=model, artifacts=artifacts,
            state=state, capabilities=caps, run_id=state.run_id, known_ids=tuple(prep.planned.spec.ids),
            open_requirements=open_reqs, item_artifacts=item_artifacts,
            next_agent=lambda: f"{state.run_id}-{next(counter)}", on_change=self._changed,
        )  # fmt: skip
        for e in events:
            if e.get("event") == "round-ended" and not (e.get("merged") or e.get("budget") or e.get("stopped")):
                self.rounds[e["item"]] = self.rounds.get(e["item"], 0) + 1
        runner = ItemRunner(self.env, prep.spec_files)
        status, reason = "done", "the plan is done"
        try:
            status, reason = await self._flow(plan, runner, restored)
        except asyncio.CancelledError:
            state.append("run-ended", status="interrupted", reason="interrupted (Ctrl-C)")
            self._write_status("interrupted", "interrupted (Ctrl-C): resume with --resume " + state.run_id)
            with contextlib.suppress(Exception):
                await asyncio.shield(manager.git("worktree", "prune"))
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(artifacts.sync())
        head = await manager.integration_head()
        matrix = await _matrix(manager.git, head, self.config, repo.llorch_dir)
        trace_art = await artifacts.put("summary", _json(matrix.to_json()), parent=stored.id,
                                        tags=["agent:trace-matrix", f"run:{state.run_id}"])  # fmt: skip
        pr: dict[str, Any] | None = None
        if self.options.pr and self.merged_commits:
            pr = await open_pull_request(repo, self.config, head, self._description(matrix), artifacts,
                                         parent=trace_art.id)  # fmt: skip
        await manager.git("worktree", "prune")
        server = await self._server_usage(client, session_id)
        summary = self._summary(status, reason, head, matrix, stored.id, trace_art.id, pr, server, client)
        state.append("run-ended", status=status, reason=reason, summary={k: summary.data[k] for k in ("items",)})
        self._write_status(status, reason, final=summary.to_json())
        return summary

    async def _server_usage(self, client: AsyncClient, session_id: str) -> dict[str, Any] | None:
        """What orchestratord says the run's session used (the budget's truth across crashes)."""
        try:
            info = await client.get_session(session_id)
        except LlamaOrchError:
            return None
        if info.budget is not None:
            self.budget.tokens_used = max(self.budget.tokens_used, info.budget.tokens_used)
            self.budget.cost_used = max(self.budget.cost_used, info.budget.cost_used)
        return info.model_dump(mode="json")

    async def _housekeeping(
        self, manager: WorkspaceManager, model: LoopModel, events: list[dict[str, Any]]
    ) -> dict[str, str]:
        """After a crash: cancel orphaned tasks, remove stale worktrees, find undecided candidates."""
        started = [e["task_id"] for e in events if e.get("event") == "call-started"]
        ended = {e["task_id"] for e in events if e.get("event") in ("call-finished", "call-cancelled", "call-failed")}
        orphans = [t for t in started if t not in ended]
        if orphans:
            cancelled = await model.cancel_orphans(orphans)
            assert self.state is not None
            self.state.append("orphans-cancelled", tasks=orphans, known=cancelled)
        decided = {e.get("branch") for e in events if e.get("event") == "decision"}
        candidates: dict[str, str] = {}
        for e in events:
            if e.get("event") == "committed" and e.get("branch") not in decided:
                candidates[e["item"]] = e["branch"]
        keep = set(candidates.values())
        assert self.state is not None
        mine = f"{self.state.run_id}-"
        # Worktrees and branches a dead CLI of this run left behind (found by name: it may have died
        # between creating one and recording it): gone, but for branches holding a candidate.
        for path in sorted(manager.worktrees_dir.glob(f"{mine}*")):
            branch = manager.branch_prefix + path.name
            with contextlib.suppress(Exception):
                await manager._remove(path, None if branch in keep else branch)
        pattern = f"refs/heads/{manager.branch_prefix}{mine}*"
        refs = await manager.git.out("for-each-ref", "--format=%(refname:short)", pattern)
        for branch in refs.split():
            if branch not in keep:
                with contextlib.suppress(Exception):
                    await manager.git("branch", "-D", "--quiet", branch)
        for leftover in manager.worktrees_dir.glob(".scratch-*"):
            with contextlib.suppress(Exception):
                await manager._remove(leftover, None)
        restored = {}
        for item_id, branch in candidates.items():
            if await manager.git.rev(f"refs/heads/{branch}") is not None:
                restored[item_id] = branch
        return restored

    # -- the flow ----------------------------------------------------------------------------------

    async def _flow(self, plan: Plan, runner: ItemRunner, restored: dict[str, str]) -> tuple[str, str]:
        assert self.env is not None and self.state is not None
        state, config = self.state, self.config
        ids = {it.id for it in plan.items}
        for it in plan.items:
            self.states[it.id] = "waiting"
        feedback: dict[str, str | None] = {}
        running: dict[asyncio.Task[RoundResult], WorkItem] = {}
        began: dict[asyncio.Task[RoundResult], float] = {}
        width = {it.id: max(1, min(config.attempts, self.agents)) for it in plan.items}
        last_sig: str | None = None
        same = 0
        self._write_status("running", "working")
        try:
            while True:
                if self.stop_reason is None:
                    try:
                        self.budget.check_time()
                    except BudgetSpent as exc:
                        self.stop_reason = ("stopped", f"budget: {exc.message}")
                if self.stop_reason is not None:
                    break
                if self.options.agents == "auto" and self.round_seconds > 0:
                    fraction = self.env.model.call_seconds / self.round_seconds
                    self.agents = auto_resize(self.slots, self.ceiling, self.auto_floor, fraction)
                    self.agents_peak = max(self.agents_peak, self.agents)
                busy = sum(width[it.id] for it in running.values())
                for it in plan.items:
                    if self.states[it.id] != "waiting":
                        continue
                    if any(self.states.get(d) != "merged" for d in it.depends_on if d in ids):
                        continue
                    if busy + width[it.id] > self.agents and busy > 0:
                        break
                    round_no = self.rounds.get(it.id, 0) + 1
                    self.states[it.id] = "running"
                    task = asyncio.create_task(
                        runner.run_round(it, round_no, feedback.get(it.id), restored.pop(it.id, None)),
                        name=f"round {it.id} #{round_no}",
                    )
                    running[task] = it
                    began[task] = time.monotonic()
                    busy += width[it.id]
                    state.append("round-started", item=it.id, round=round_no)
                if not running:
                    break
                self._changed()
                timeout = 1.0
                if (left := self.budget.time_left_s()) is not None:
                    timeout = max(0.05, min(timeout, left))
                done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    it = running.pop(task)
                    self.round_seconds += time.monotonic() - began.pop(task)
                    try:
                        result = task.result()
                    except BudgetSpent as exc:
                        self.states[it.id] = "waiting"
                        self.stop_reason = ("stopped", f"budget: {exc.message}")
                        state.append("round-ended", item=it.id, merged=False, reason=exc.message, budget=True)
                        continue
                    except LlamaOrchError as exc:
                        result = RoundResult(False, f"backend: {exc}", signature=f"backend:{type(exc).__name__}")
                    except Exception as exc:  # a bug or an environment failure: the item's round failed
                        log.exception("round of %s failed", it.id)
                        name = type(exc).__name__
                        result = RoundResult(False, f"{name}: {exc}", signature=f"error:{name}")
                    self.model_calls += result.model_calls
                    state.append("round-ended", item=it.id, round=self.rounds.get(it.id, 0) + 1, merged=result.merged,
                                 reason=result.reason, signature=result.signature)  # fmt: skip
                    if result.merged:
                        self.states[it.id] = "merged"
                        self.reasons[it.id] = result.reason
                        if result.decision and result.decision.merge_commit:
                            self.merged_commits.append(result.decision.merge_commit)
                        self.fast_path += int(result.fast_path)
                        if it.kind == "code":
                            self.env.open_requirements.difference_update(it.requirements)
                        last_sig, same = None, 0
                        continue
                    self.rounds[it.id] = self.rounds.get(it.id, 0) + 1
                    self.reasons[it.id] = result.reason
                    feedback[it.id] = result.feedback or result.reason
                    if self.rounds[it.id] >= config.max_tries:
                        self.states[it.id] = "failed"
                        state.append("item-failed", item=it.id, rounds=self.rounds[it.id], reason=result.reason)
                        self._block(plan, it.id)
                    else:
                        self.states[it.id] = "waiting"
                    same = same + 1 if result.signature is not None and result.signature == last_sig else 1
                    last_sig = result.signature
                    if same >= config.stall_after:
                        self.stop_reason = ("stalled", f"the same failure {same} times in a row ({last_sig}): "
                                                       f"{result.reason[:300]}")  # fmt: skip
        finally:
            if running:
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                why = self.stop_reason[1] if self.stop_reason is not None else "interrupted"
                for it in running.values():
                    if self.states.get(it.id) == "running":
                        self.states[it.id] = "waiting"
                    # every round that started ends in the log; one cut short is not a try
                    state.append("round-ended", item=it.id, round=self.rounds.get(it.id, 0) + 1, merged=False,
                                 reason=f"cut short: {why}", stopped=True)  # fmt: skip
        if self.stop_reason is not None:
            return self.stop_reason
        unfinished = [i for i, s in self.states.items() if s != "merged"]
        if not unfinished:
            return "done", f"the plan is done: {len(self.states)} item(s) merged"
        failed = [i for i, s in self.states.items() if s == "failed"]
        blocked = [i for i, s in self.states.items() if s == "blocked"]
        return "incomplete", f"{len(failed)} item(s) failed, {len(blocked)} blocked by them"

    def _block(self, plan: Plan, failed: str) -> None:
        changed = True
        gone = {failed}
        while changed:
            changed = False
            for it in plan.items:
                if it.id not in gone and self.states.get(it.id) == "waiting" and gone & set(it.depends_on):
                    self.states[it.id] = "blocked"
                    gone.add(it.id)
                    changed = True

    # -- reporting ---------------------------------------------------------------------------------

    def _tokens(self, agent_id: str, used: int) -> None:
        if self.env is not None and (view := self.env.agents.get(agent_id)) is not None:
            view.tokens += used
        self._changed()

    def _changed(self) -> None:
        now = time.monotonic()
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            self._write_status("running", "working")
        if self.on_update is not None:
            self.on_update(self)

    def counts(self) -> dict[str, int]:
        out = {"total": len(self.states), "done": 0, "running": 0, "waiting": 0, "failed": 0, "blocked": 0}
        for s in self.states.values():
            key = {"merged": "done"}.get(s, s)
            out[key] = out.get(key, 0) + 1
        return out

    def snapshot(self, status: str, reason: str) -> dict[str, Any]:
        env = self.env
        gates = env.gate_runs if env else {"pass": 0, "fail": 0}
        runs = gates["pass"] + gates["fail"]
        return {
            "run_id": self.state.run_id if self.state else None,
            "command": self.options.command,
            "status": status,
            "reason": reason,
            "updated": time.time(),
            "pid": os.getpid(),
            "agents": [a.to_json() for a in env.agents.values()] if env else [],
            "agents_max": self.agents,
            "slots": self.slots,
            "items": self.counts(),
            "item_states": dict(self.states),
            "budget": self.budget.to_json(),
            "gates": {**gates, "pass_rate": round(gates["pass"] / runs, 3) if runs else None},
            "merged_commits": list(self.merged_commits),
            "in_flight_tasks": sorted(env.model.in_flight) if env else [],
        }

    def _write_status(self, status: str, reason: str, final: dict[str, Any] | None = None) -> None:
        if self.state is None:
            return
        snap = self.snapshot(status, reason)
        if final is not None:
            snap["summary"] = final
        self.state.write_status(snap)

    def _description(self, matrix: TraceMatrix) -> str:
        lines = [f"Work of llama-orch run {self.state.run_id if self.state else '?'}.", ""]
        lines.append("| requirement | contract | tests | commit |")
        lines.append("|---|---|---|---|")
        for row in matrix.rows:
            lines.append(f"| {row.requirement} | {'yes' if row.contracts else '-'} | {len(row.tests)} | "
                         f"{row.commits[0].sha[:12] if row.commits else '-'} |")  # fmt: skip
        return "\n".join(lines) + "\n"

    def _summary(
        self, status: str, reason: str, head: str, matrix: TraceMatrix, plan_art: str, trace_art: str,
        pr: dict[str, Any] | None, server: dict[str, Any] | None, client: AsyncClient,
    ) -> RunSummary:  # fmt: skip
        assert self.state is not None and self.env is not None
        stats = client.limiter.stats() if client.limiter is not None else None
        rejected = [{"item": i, "reason": self.reasons.get(i, "")} for i, s in self.states.items() if s != "merged"]
        gates = self.env.gate_runs
        runs = gates["pass"] + gates["fail"]
        data: dict[str, Any] = {
            "base": self.prep.repo.base,
            "integration_branch": self.prep.repo.integration_branch,
            "integration_head": head,
            "items": self.counts(),
            "item_states": dict(self.states),
            "unfinished": rejected,
            "merged_commits": list(self.merged_commits),
            "tokens_spent": self.budget.tokens_used,
            "cost_spent": round(self.budget.cost_used, 9),
            "elapsed_s": round(self.budget.elapsed_s(), 3),
            "budget": self.budget.to_json(),
            "server_session": server,
            "model_calls": self.env.model.calls,
            "fast_path_merges": self.fast_path,
            "agents": self.agents,
            "agents_peak": self.agents_peak,
            "slots": self.slots,
            "gates": {**gates, "pass_rate": round(gates["pass"] / runs, 3) if runs else None},
            "limiter": None if stats is None else {
                "limit": round(stats.limit, 2), "admitted": stats.admitted, "backpressure": stats.backpressure,
                "peak_in_flight": stats.peak_in_flight,
            },
            "artifacts": {"plan": plan_art, "trace": trace_art, **({"pr": pr.get("artifact")} if pr else {})},
            "pull_request": pr,
            "plan_warnings": self.plan.warnings if self.plan else [],
            "trace": matrix.to_json(),
        }  # fmt: skip
        return RunSummary(self.state.run_id, self.options.command, status, reason, data)


async def run_loop(options: LoopOptions, *, on_start: Callable[[LoopRun], None] | None = None) -> RunSummary:
    """Check, plan and run (see the module docstring); holds the repository's lock throughout."""
    located = await open_repo(options.repo, integration_branch=LoopConfig().integration_branch, require_clean=False)
    with repo_lock(located.llorch_dir):
        prep = await prepare(options)
        run = LoopRun(options, prep)
        if on_start is not None:
            on_start(run)
        return await run.run()
