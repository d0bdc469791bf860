"""One round of one work item: propose in a worktree, check, commit, and merge through the queue.

A round, for an item of any kind (contract, test, code):

1. a worktree on a new branch at the integration head (the set-up command runs in it);
2. the role's prompt: the requirement, its contract and tests, where to write, and — after a
   rejection — why the last proposal was rejected; repository files ranked and included whole;
3. the model's answer must be edit blocks that apply, touching only what the role may touch
   (contracts: the contract folders, each document valid; tests: the test folders; code: neither,
   nor specs or the loop's own configuration); a malformed answer is asked again with the error
   (bounded by ``model_attempts``, every attempt recorded);
4. the change is written, committed with trailers (``Requirement``, ``Run-Id``, ``Artifact-Id``,
   ``Seed``, ``Work-Item``, ``Stage``) and submitted to the merge queue, whose gates decide;
5. the worktree is removed, whatever happened.

**Best of K** (``attempts`` > 1): K proposals with different seeds run at once, each checked by
the gates in its own worktree; the first to pass goes to the merge queue, and the others are
cancelled, their model tasks cancelled on the server.

**The fast path.** A candidate made on an older integration head is merged without any model
call when ``git merge-tree`` merges it cleanly (the queue re-checks the gates on the merged tree);
only a real conflict sends the item back to an agent, on a fresh worktree at the new head.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from llama_orch.agents._artifacts_client import AgentArtifacts
from llama_orch.agents._context import ContextBudgetError, ctx_max_for
from llama_orch.agents._contract_check import SUFFIXES, check_contract_text
from llama_orch.agents._edits_apply import ChangeSet, EditError, plan_edits, write_changes
from llama_orch.agents._formats import EditBlocksFormat, OutputFormatError
from llama_orch.agents._git import GitError
from llama_orch.agents._loop_config import CONFIG_FILE, LoopConfig
from llama_orch.agents._loop_gates import CURRENT, GateContext, LoopGates
from llama_orch.agents._loop_model import CallContext, LoopModel
from llama_orch.agents._merge import MergeDecision, MergeQueue
from llama_orch.agents._modelio import ModelOutputError, call_model
from llama_orch.agents._plan import WorkItem
from llama_orch.agents._prompts import PromptBuilder
from llama_orch.agents._pycheck import salvage, syntax_error
from llama_orch.agents._runstate import RunState
from llama_orch.agents._trace_tests import scan_python_test
from llama_orch.agents._trailers import Trailers
from llama_orch.agents._workspace import NothingToCommitError, Workspace, WorkspaceError, WorkspaceManager
from llama_orch_api import Capabilities

__all__ = ["AgentView", "ItemRunner", "Proposal", "RoundResult", "StageEnv"]

log = logging.getLogger("llama_orch.agents.loop")

MAX_CONTEXT_FILE_BYTES = 48 * 1024
FEEDBACK_CHARS = 3000
_SKIP_FILES = {"uv.lock", "poetry.lock", "package-lock.json", "Cargo.lock", "yarn.lock"}


@dataclass
class AgentView:
    """What ``status`` shows of one agent."""

    agent_id: str
    role: str
    item: str
    state: str
    tokens: int = 0
    attempt: int = 1
    since: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent_id, "role": self.role, "item": self.item, "state": self.state,
                "tokens": self.tokens, "attempt": self.attempt, "since": round(self.since, 3)}  # fmt: skip


@dataclass
class StageEnv:
    """What every round needs, shared by all agents of a run."""

    config: LoopConfig
    manager: WorkspaceManager
    queue: MergeQueue
    gates: LoopGates
    model: LoopModel
    artifacts: AgentArtifacts
    state: RunState
    capabilities: Capabilities
    run_id: str
    known_ids: tuple[str, ...]
    open_requirements: set[str]
    item_artifacts: dict[str, str]
    next_agent: Callable[[], str]
    agents: dict[str, AgentView] = field(default_factory=dict)
    on_change: Callable[[], None] = lambda: None
    gate_runs: dict[str, int] = field(default_factory=lambda: {"pass": 0, "fail": 0})

    def record(self, event: str, **fields: Any) -> None:
        self.state.append(event, **fields)
        self.on_change()

    def set_agent(self, agent_id: str, **update: Any) -> None:
        view = self.agents.get(agent_id)
        if view is None:
            return
        for key, value in update.items():
            setattr(view, key, value)
        view.since = time.time()
        self.on_change()


@dataclass
class Proposal:
    workspace: Workspace
    commit: str
    edit_artifact: str
    seed: int
    changes: tuple[str, ...]
    agent_id: str
    open_at_base: frozenset[str] = frozenset()
    """Requirements whose code was still to come when the worktree was made (what its tree lacks)."""


@dataclass
class RoundResult:
    """How a round ended: merged, or why not (``signature`` groups equal failures for stall detection)."""

    merged: bool
    reason: str
    signature: str | None = None
    decision: MergeDecision | None = None
    feedback: str | None = None
    model_calls: int = 0
    fast_path: bool = False


_STOPS = ("\n>>>>>>> FILE", "\n<<<<<<<", "\n```", "\n### ", "\n## ", "\n# Role:")
CLOSE_FILE = "\n>>>>>>> FILE\n"


REPEATS = 4
"""The same line this many times in a row is a model stuck in a loop (small models do it): the answer is
cut after its first occurrence and judged as it is, rather than waited for until ``max_tokens``."""


def looping_cut(text: str, repeats: int = REPEATS) -> int | None:
    """Where a run of ``repeats`` identical non-blank lines begins to repeat (after the first), if any."""
    start = 0
    run_start, run_line, run = 0, "", 0
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # not complete yet
        stripped = line.strip()
        if stripped and stripped == run_line:
            run += 1
            if run >= repeats:
                return run_start
        else:
            run_line, run, run_start = stripped, 1, start + len(line)
        start += len(line)
    return None


def block_cut(text: str) -> int | None:
    """Where a whole-file block's content ends: before the first line that cannot belong to it, or where
    the model started repeating itself (:func:`looping_cut`)."""
    if text.startswith(">>>>>>> FILE"):
        return 0
    found = [i for i in (text.find(s) for s in _STOPS) if i >= 0]
    if (loop := looping_cut(text)) is not None:
        found.append(loop)
    return min(found) if found else None


def json_cut(depth: int) -> Callable[[str], int | None]:
    """A cut after the JSON object the prefix opened (``depth`` braces deep) closes, or at a block stop."""

    def cut(text: str) -> int | None:
        level, in_string, escaped = depth, False, False
        for i, ch in enumerate(text):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in "{[":
                level += 1
            elif ch in "}]":
                level -= 1
                if level == 0:
                    return i + 1
        return block_cut(text)

    return cut


_TRAILING_COMMA = re.compile(r",(\s*[\]}])")


def _lenient_json(changes: ChangeSet) -> ChangeSet:
    """JSON contracts with trailing commas (small models write them) repaired, when that is all."""
    fixed = []
    for ch in changes.changes:
        if ch.path.endswith(".json"):
            text = ch.after.decode("utf-8", "replace")
            try:
                json.loads(text)
            except ValueError:
                try:
                    value = json.loads(_TRAILING_COMMA.sub(r"\1", text))
                except ValueError:
                    pass
                else:
                    ch = replace(ch, after=(json.dumps(value, indent=2) + "\n").encode())
        fixed.append(ch)
    return replace(changes, changes=tuple(fixed))


def _unparsable(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return True
    return False


def seed_for(run_id: str, item_id: str, round_no: int, k: int) -> int:
    digest = hashlib.sha256(f"{run_id}/{item_id}/{round_no}/{k}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class ProposalFormat(EditBlocksFormat):
    """Edit blocks that apply, limited to what the item's role may write (see the module docstring)."""

    def __init__(self, workspace: Path, item: WorkItem, config: LoopConfig, spec_files: Collection[str]) -> None:
        super().__init__(workspace)
        self.item = item
        self.config = config
        self.spec_files = set(spec_files)

    def describe(self) -> str:
        where = {
            "contract": f"Write only under {', '.join(self.config.contracts)}/ (JSON Schema, OpenAPI or Pact).",
            "test": f"Write only under {', '.join(self.config.tests)}/.",
            "code": "Do not change tests, contracts, specs or configuration files.",
        }[self.item.kind]
        return f"{super().describe()}\n\n{where}"

    def parse(self, text: str) -> ChangeSet:
        try:
            changes = plan_edits(self.workspace, text)
        except EditError as exc:
            raise OutputFormatError(str(exc)) from exc
        if not changes.changes:
            raise OutputFormatError("the edit blocks change nothing: the task needs a change")
        changes = _lenient_json(changes) if self.item.kind == "contract" else self._salvaged(changes)
        problems = [p for ch in changes.changes if (p := self._problem(ch.path, ch.after))]
        if problems:
            raise OutputFormatError("the change is not allowed:\n" + "\n".join(f"- {p}" for p in problems))
        return changes

    def _salvaged(self, changes: ChangeSet) -> ChangeSet:
        """Python files cut after their last whole statement when the model wrote on past valid code
        (:func:`._pycheck.salvage`); a coder's file that is not Python even then is malformed (the
        model is asked again), a test file is left to the tests-plan gate, which says why."""
        fixed = []
        t = self.item.target
        for ch in changes.changes:
            if ch.path.endswith(".py"):
                text = ch.after.decode("utf-8", "replace")
                need = [t.callable] if self.item.kind == "code" and t.callable and ch.path == t.file else []
                kept = salvage(text, defines=need, tests=self.item.kind == "test")
                if kept is not None and kept != text:
                    log.info("%s: %s cut to its last whole statement that parses", self.item.id, ch.path)
                    ch = replace(ch, after=kept.encode())
                elif kept is None and self.item.kind == "code":
                    error = syntax_error(text) or f"it does not define {', '.join(need)}"
                    raise OutputFormatError(f"{ch.path} is not valid Python ({error}): write the whole file again")
            fixed.append(ch)
        return replace(changes, changes=tuple(fixed))

    def _problem(self, path: str, after: bytes) -> str | None:
        p = PurePosixPath(path)

        def under(dirs: Collection[str]) -> bool:
            return any(p.is_relative_to(d) for d in dirs)

        if path in ("pyproject.toml", CONFIG_FILE) or p.is_relative_to(".llorch") or path in self.spec_files:
            return f"{path}: specs and the loop's configuration are not the agents' to change"
        kind = self.item.kind
        if kind == "contract":
            if not under(self.config.contracts) or p.suffix not in SUFFIXES:
                return f"{path}: a contract goes under {', '.join(self.config.contracts)}/ as .json, .yaml or .yml"
            text = after.decode("utf-8", "replace")
            bad = check_contract_text(text, p.name)
            if bad:
                return f"{path}: " + "; ".join(bad)
            if not any(r in text for r in self.item.requirements):
                return f"{path}: the contract must cite {', '.join(self.item.requirements)} in x-req-id"
        elif kind == "test":
            if not under(self.config.tests):
                return f"{path}: tests go under {', '.join(self.config.tests)}/"
            if p.suffix == ".py" and p.name.startswith("test"):
                text = after.decode("utf-8", "replace")
                reqs = self.item.requirements
                cited = {c.req_id for c in scan_python_test(text, path, reqs, self.config.id_pattern)}
                # A file that does not parse is left to the tests-plan gate, which rejects it for that.
                if not cited & set(reqs) and not (_unparsable(text) and any(r in text for r in reqs)):
                    return f"{path}: mark the tests with @pytest.mark.req({reqs[0]!r})"
        elif under(self.config.tests) or under(self.config.contracts):
            return f"{path}: a coder changes code only, never tests or contracts"
        return None


class ItemRunner:
    """Runs the rounds of work items for a loop (one instance per run)."""

    def __init__(self, env: StageEnv, spec_files: Collection[str]) -> None:
        self.env = env
        self.spec_files = tuple(spec_files)

    # -- one round --------------------------------------------------------------------------------

    async def run_round(
        self, item: WorkItem, round_no: int, feedback: str | None, restored: str | None = None
    ) -> RoundResult:
        """One round of ``item``; ``restored``: a branch holding a candidate made before a crash."""
        if restored is not None:
            return await self._merge_restored(item, restored)
        k = max(1, self.env.config.attempts)
        if k == 1:
            proposal, failure = await self._propose(item, round_no, 0, feedback)
            if proposal is None:
                assert failure is not None
                return failure
            return await self._merge(item, proposal)
        return await self._best_of(item, round_no, k, feedback)

    async def _best_of(self, item: WorkItem, round_no: int, k: int, feedback: str | None) -> RoundResult:
        async def one(n: int) -> tuple[Proposal | None, RoundResult | None]:
            proposal, failure = await self._propose(item, round_no, n, feedback)
            if proposal is None:
                return None, failure
            try:
                ok, why = await self._precheck(item, proposal)
            except BaseException:
                await asyncio.shield(self._drop(proposal, delete_branch=True))
                raise
            if ok:
                return proposal, None
            await self._drop(proposal, delete_branch=True)
            return None, RoundResult(False, f"gates failed in its worktree: {why}", signature=f"gates:{item.kind}",
                                     feedback=why, model_calls=1)  # fmt: skip

        tasks = [asyncio.create_task(one(n), name=f"{item.id}#{n}") for n in range(k)]
        winner: Proposal | None = None
        failures: list[RoundResult] = []
        try:
            for next_done in asyncio.as_completed(tasks):
                proposal, failure = await next_done
                if proposal is not None:
                    winner = proposal
                    break
                if failure is not None:
                    failures.append(failure)
        finally:
            losers = [t for t in tasks if not t.done()]
            for t in losers:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for r in results:
                if isinstance(r, tuple) and r[0] is not None and r[0] is not winner:
                    await self._drop(r[0], delete_branch=True)
        if winner is None:
            last = failures[-1] if failures else RoundResult(False, "no proposal", signature="none")
            return RoundResult(False, f"none of {k} proposals passed: {last.reason}", signature=last.signature,
                               feedback=last.feedback, model_calls=k)  # fmt: skip
        self.env.record("best-of", item=item.id, k=k, winner=winner.agent_id, cancelled=len(losers))
        result = await self._merge(item, winner)
        result.model_calls = k
        return result

    # -- proposing --------------------------------------------------------------------------------

    async def _propose(
        self, item: WorkItem, round_no: int, k: int, feedback: str | None
    ) -> tuple[Proposal | None, RoundResult | None]:
        env = self.env
        agent_id = env.next_agent()
        role = env.config.role(item.role)
        env.agents[agent_id] = AgentView(agent_id, item.role.value, item.id, "starting", attempt=round_no)
        env.record("agent-started", agent=agent_id, item=item.id, round=round_no, k=k)
        workspace: Workspace | None = None
        committed = False
        try:
            # Taken before the worktree: a merge landing meanwhile leaves it larger, never smaller.
            open_at_base = frozenset(env.open_requirements)
            workspace = await env.manager.create(agent_id)
            env.record("workspace", agent=agent_id, item=item.id, branch=workspace.branch, path=str(workspace.path),
                       base=await workspace.head())  # fmt: skip
            if (failure := await self._setup(agent_id, workspace)) is not None:
                return None, failure
            env.set_agent(agent_id, state="prompting")
            pool = role.pool
            caps_pool = next((p for p in env.capabilities.pools if pool is None or p.id == pool), None)
            max_tokens = min(role.max_tokens or 1024, caps_pool.max_tokens if caps_pool else 1 << 30)
            builder = PromptBuilder(
                item.role,
                self._task(item),
                ctx_max=min(
                    ctx_max_for(env.capabilities, pool), (env.config.max_prompt_tokens or 1 << 30) + max_tokens
                ),
                max_tokens=max_tokens,
                inputs=self._inputs(item, workspace.path, feedback),
                files=await asyncio.to_thread(self._files, workspace.path),
                terms=[*item.requirements, *item.target.names],
                pinned=[item.target.file, *item.inputs.tests, *item.inputs.contracts],
            )
            seed = seed_for(env.run_id, item.id, round_no, k)
            prefix, cut = self._prefill(item, pool)
            builder.answer_prefix = prefix
            ctx = CallContext(
                agent_id=agent_id, item_id=item.id, role=item.role.value,
                parent_artifact=env.item_artifacts.get(item.id), priority=role.priority or "batch",
                pool=pool, model_ref=role.model, prefix=prefix, cut=cut, close=CLOSE_FILE if prefix else "",
            )  # fmt: skip
            env.set_agent(agent_id, state="generating")
            fmt = ProposalFormat(workspace.path, item, env.config, self.spec_files)
            try:
                result = await call_model(
                    builder, fmt, env.model.completion(ctx), seed=seed,
                    max_attempts=env.config.model_attempts, pool=pool, session_id=env.model.session_id,
                )  # fmt: skip
            except ModelOutputError as exc:
                env.record("malformed", agent=agent_id, item=item.id, attempts=len(exc.attempts),
                           errors=[a.error for a in exc.attempts])  # fmt: skip
                last = exc.attempts[-1].error or "malformed"
                return None, RoundResult(False, f"no usable answer in {len(exc.attempts)} attempts: {last[:300]}",
                                         signature=f"malformed:{item.kind}", model_calls=1)  # fmt: skip
            except ContextBudgetError as exc:
                return None, RoundResult(False, f"the prompt does not fit: {exc}", signature="context")
            env.set_agent(agent_id, state="committing")
            changes = result.value
            await asyncio.to_thread(write_changes, changes)
            response = env.model.artifacts_of.get(result.completion.task_id, (None, None))[1]
            edit = await env.artifacts.edit_set(
                changes.diff(), parent=response,
                tags=[f"run:{env.run_id}", f"item:{item.id}", f"agent:{agent_id}"],
            )  # fmt: skip
            trailers = Trailers(
                requirements=item.requirements, run_id=env.run_id, artifact_ids=[edit.id], seed=seed,
                extra=(("Work-Item", item.id), ("Stage", item.kind)),
            )  # fmt: skip
            paths = [c.path for c in changes.changes]
            try:
                commit = await workspace.commit(f"{item.kind}: {item.title}", trailers, paths=paths)
            except NothingToCommitError:
                return None, RoundResult(False, "the proposal changes nothing", signature=f"empty:{item.kind}")
            committed = True
            env.record("committed", agent=agent_id, item=item.id, branch=workspace.branch, commit=commit,
                       edit_artifact=edit.id, seed=seed, files=paths)  # fmt: skip
            return Proposal(workspace, commit, edit.id, seed, tuple(paths), agent_id, open_at_base), None
        except (WorkspaceError, GitError) as exc:
            return None, RoundResult(False, f"workspace: {exc}", signature="workspace")
        finally:
            if workspace is not None and not committed:
                with contextlib.suppress(Exception):
                    await asyncio.shield(env.manager.remove(workspace))
            if not committed:
                env.agents.pop(agent_id, None)
                env.on_change()

    async def _setup(self, agent_id: str, workspace: Workspace) -> RoundResult | None:
        argv = self.env.config.setup_argv()
        if not argv:
            return None
        self.env.set_agent(agent_id, state="setup")
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=workspace.path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.env.config.setup_timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return RoundResult(False, f"the set-up command timed out after {self.env.config.setup_timeout_s:g} s",
                               signature="setup")  # fmt: skip
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            tail = out.decode(errors="replace")[-500:]
            return RoundResult(False, f"the set-up command failed ({proc.returncode}): {tail}", signature="setup")
        return None

    def _prefill(self, item: WorkItem, pool: str | None) -> tuple[str, Callable[[str], int | None] | None]:
        """The answer's start for a completion model to continue, and where its block ends (see
        :class:`~._loop_config.LoopConfig` ``prefill``); ``("", None)`` when off."""
        enabled = self.env.config.prefill
        if enabled is None:
            engines = {p.engine for p in self.env.capabilities.pools if pool is None or p.id == pool}
            enabled = engines != {"mock"}
        if not enabled:
            return "", None
        t, req = item.target, item.requirements[0]
        if item.kind == "contract":
            title = f"{t.module}.{t.callable}" if t.module and t.callable else req
            head = (f'{item.files[0]}\n<<<<<<< FILE\n{{\n  "$schema": "https://json-schema.org/draft/2020-12/schema",\n'
                    f'  "x-req-id": "{req}",\n  "title": "{title}",\n')  # fmt: skip
            return head, json_cut(1)
        if item.kind == "test":
            imp = f"{t.import_line()}\n" if t.import_line() else ""
            return (f'{item.files[0]}\n<<<<<<< FILE\nimport pytest\n\n{imp}\n\n@pytest.mark.req("{req}")\n'
                    "def test_"), block_cut  # fmt: skip
        start = f"def {t.callable}(" if t.callable and not t.exists else ""
        return f"{t.file}\n<<<<<<< FILE\n{start}", block_cut

    def _task(self, item: WorkItem) -> str:
        t = item.target
        reqs = ", ".join(item.requirements)
        head = f"Work item: {item.id}\n\n"
        if item.kind == "contract":
            path = item.files[0]
            about = f" describing `{t.module}.{t.callable}` (its inputs and its result)" if t.callable else ""
            return head + (
                f"Write the contract for requirement {reqs}: a JSON Schema (draft 2020-12) document in "
                f'`{path}`{about}, with "x-req-id": "{item.requirements[0]}" at its top level. (For an HTTP API '
                "write an OpenAPI 3.1 document with x-req-id on every operation instead.)\n\n"
                f"Acceptance: {item.gate}."
            )
        if item.kind == "test":
            path = item.files[0]
            imp = f" Import the code under test as `{t.import_line()}`." if t.import_line() else ""
            return head + (
                f"Write pytest tests for requirement {reqs} in `{path}`, each marked "
                f'@pytest.mark.req("{item.requirements[0]}").{imp} Test exactly what the requirement states.\n\n'
                f"Acceptance: {item.gate}."
            )
        where = f"`{t.callable}` in `{t.file}` (module `{t.module}`)" if t.callable and t.module else f"`{t.file}`"
        return head + (
            f"Implement requirement {reqs}: write {where} so that the tests of {reqs} pass. Change only code; "
            "never tests, contracts or specs.\n\n"
            f"Acceptance: {item.gate}."
        )

    def _inputs(self, item: WorkItem, root: Path, feedback: str | None) -> dict[str, str]:
        out = {f"Requirement {item.requirements[0]}": f"{item.inputs.requirement}\n\n(stated at {item.inputs.source})"}
        for label, paths in (("Contract", item.inputs.contracts), ("Tests", item.inputs.tests)):
            if item.kind == "contract" and label == "Contract":
                continue
            for path in paths:
                file = root / path
                if file.is_file():
                    out[f"{label}: {path}"] = f"```\n{file.read_text(encoding='utf-8', errors='replace')}\n```"
        if item.inputs.failing and item.kind == "code":
            out["Failing now"] = "\n".join(f"- {f}" for f in item.inputs.failing[:20])
        if feedback:
            out["Previous attempt rejected"] = feedback[-FEEDBACK_CHARS:]
        return out

    def _files(self, root: Path) -> dict[str, str]:
        files: dict[str, str] = {}
        limit = self.env.config.max_context_files
        for path in sorted(root.rglob("*")):
            if len(files) >= limit:
                break
            rel = path.relative_to(root)
            hidden = any(part.startswith(".") for part in rel.parts) or "__pycache__" in rel.parts
            if hidden or path.name in _SKIP_FILES:
                continue
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_CONTEXT_FILE_BYTES:
                continue
            try:
                files[rel.as_posix()] = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
        return files

    # -- checking and merging ---------------------------------------------------------------------

    def _context(
        self, item: WorkItem, changed: Collection[str], open_requirements: Collection[str] | None = None
    ) -> GateContext:
        """The gates' context; ``open_requirements`` fixed for a check of a worktree's own tree, else
        the run's, as they are when the check runs (the merge queue's check of the merged tree)."""
        tests = tuple(p for p in changed if p.endswith(".py") and any(
            PurePosixPath(p).is_relative_to(d) for d in self.env.config.tests))  # fmt: skip
        open_now = (lambda: set(self.env.open_requirements)) if open_requirements is None else (
            lambda: set(open_requirements))  # fmt: skip
        return GateContext(item, open_now, tests, self.env.known_ids, tuple(changed))

    async def _precheck(self, item: WorkItem, proposal: Proposal) -> tuple[bool, str]:
        self.env.set_agent(proposal.agent_id, state="checking")
        # The worktree's tree is as of its base: code merged since is not in it, so its requirements
        # count as still to come here (the merge queue checks the merged tree with the run's set).
        token = CURRENT.set(self._context(item, proposal.changes, proposal.open_at_base))
        try:
            results = await self.env.gates.runner(self.env.gates.specs, proposal.workspace.path, proposal.commit)
        finally:
            CURRENT.reset(token)
        failed = [r for r in results if not r.passed]
        self.env.record("precheck", agent=proposal.agent_id, item=item.id, ok=not failed,
                        gates=[{"name": r.name, "status": r.status, "reason": r.reason} for r in results])  # fmt: skip
        return not failed, "; ".join(f"gate {r.name}: {r.status} ({r.reason})" for r in failed)

    async def _merge(self, item: WorkItem, proposal: Proposal) -> RoundResult:
        env = self.env
        env.set_agent(proposal.agent_id, state="merging")
        try:
            await env.manager.remove(proposal.workspace, delete_branch=False)
            return await self._submit(item, proposal.workspace.branch, proposal.edit_artifact, proposal.changes,
                                      proposal.agent_id, model_calls=1)  # fmt: skip
        finally:
            env.agents.pop(proposal.agent_id, None)
            env.on_change()

    async def _merge_restored(self, item: WorkItem, branch: str) -> RoundResult:
        env = self.env
        commit = await env.manager.git.rev(f"refs/heads/{branch}")
        if commit is None:
            return RoundResult(False, f"the recorded candidate {branch} is gone", signature="restore")
        base = await env.manager.integration_head()
        names = await env.manager.git.out("diff", "--name-only", f"{base}...{commit}")
        edit = next((e.get("edit_artifact") for e in reversed(env.state.events())
                     if e.get("event") == "committed" and e.get("branch") == branch), None)  # fmt: skip
        env.record("restored", item=item.id, branch=branch, commit=commit)
        return await self._submit(item, branch, edit, tuple(names.splitlines()), None, model_calls=0)

    async def _submit(
        self, item: WorkItem, branch: str, edit: str | None, changed: Collection[str], agent_id: str | None,
        *, model_calls: int,
    ) -> RoundResult:  # fmt: skip
        env = self.env
        git = env.manager.git
        candidate = await git.rev(f"refs/heads/{branch}")
        base = (await git.out("merge-base", candidate or branch, env.manager.integration_ref)) if candidate else None
        token = CURRENT.set(self._context(item, changed))
        try:
            decision = await env.queue.submit(branch, parent_artifact=edit)
            for _ in range(2):  # the head kept moving: the same candidate again, no model call
                if decision.outcome != "gave-up":
                    break
                decision = await env.queue.submit(branch, parent_artifact=edit)
        finally:
            CURRENT.reset(token)
        for r in decision.gate_results:
            env.gate_runs["pass" if r.passed else "fail"] += 1
        fast = decision.outcome == "merged" and base is not None and base != decision.integration_before
        env.record(
            "decision", item=item.id, agent=agent_id, branch=branch, outcome=decision.outcome,
            reason=decision.reason, merge_commit=decision.merge_commit, candidate=decision.candidate,
            artifact=decision.artifact_id, fast_path=fast,
            gates=[{"name": r.name, "status": r.status, "reason": r.reason} for r in decision.gate_results],
        )  # fmt: skip
        with contextlib.suppress(GitError):
            if await git.rev(f"refs/heads/{branch}") is not None:
                await git("branch", "-D", "--quiet", branch)
        if decision.outcome == "merged":
            return RoundResult(True, decision.reason, decision=decision, model_calls=model_calls, fast_path=fast)
        if decision.outcome == "conflict":
            why = f"it conflicted with the integration branch in {', '.join(decision.conflicts)}: start again from it"
            return RoundResult(False, decision.reason, signature=f"conflict:{item.kind}", decision=decision,
                               feedback=why, model_calls=model_calls)  # fmt: skip
        feedback = self._gate_feedback(decision)
        gates = ",".join(sorted(r.name for r in decision.gate_results if not r.passed)) or decision.outcome
        return RoundResult(False, decision.reason, signature=f"{decision.outcome}:{item.kind}:{gates}",
                           decision=decision, feedback=feedback, model_calls=model_calls)  # fmt: skip

    @staticmethod
    def _gate_feedback(decision: MergeDecision) -> str:
        parts = [f"Your proposal was rejected by its gates: {decision.reason}"]
        for r in decision.gate_results:
            if r.passed:
                continue
            output = (r.stdout + "\n" + r.stderr).strip()
            parts.append(f"Gate {r.name} ({r.status}): {r.reason}\n{output[-1500:]}")
        return "\n\n".join(parts)

    async def _drop(self, proposal: Proposal, *, delete_branch: bool) -> None:
        with contextlib.suppress(WorkspaceError, GitError):
            await self.env.manager.remove(proposal.workspace, delete_branch=delete_branch)
        self.env.agents.pop(proposal.agent_id, None)
        self.env.on_change()
