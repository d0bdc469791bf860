"""The gates of a loop run, judged with what the loop knows about the candidate.

The merge queue runs the repository's gates on the merged tree; this runner (its
:data:`~._merge.GateRunner`) adds the loop's judgement:

* the **tests** gate is judged by the ratchet (:func:`._verdict.judge_tests`): failures are allowed
  only for requirements whose code is still open, and merging a code item closes its requirements
  first, so their tests must pass; pytest's "no tests collected" (exit 5) is a pass;
* a test item adds the **tests-plan** gate: pytest on the proposed test files alone, judged by
  :func:`._verdict.judge_new_tests` (fail for the right reason, or pass when the code exists);
* the **contracts** gate validates every contract (:mod:`._contract_check`, in this process: it
  is our code reading files, not the repository's), for candidates that change a contract (what is
  already merged passed it then).

Which item a check is for travels in a context variable set by the coroutine that submits the
candidate (the queue runs the check in that same task), so one queue serves every item in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from llama_orch.agents import _contract_check
from llama_orch.agents._gates import GateResult, GateSpec, run_gate
from llama_orch.agents._loop_config import LoopConfig
from llama_orch.agents._plan import WorkItem
from llama_orch.agents._planner import citations_by_node, read_failures
from llama_orch.agents._pycheck import fixture_names, unresolved_fixtures
from llama_orch.agents._sandbox import Isolation
from llama_orch.agents._verdict import Verdict, judge_new_tests, judge_tests

__all__ = ["CURRENT", "GateContext", "LoopGates"]

log = logging.getLogger("llama_orch.agents.loop")

TESTS_PLAN_JUNIT = ".llorch-out/tests-plan.xml"
CONTRACTS_GATE = "contracts"


@dataclass(frozen=True)
class GateContext:
    item: WorkItem
    open_requirements: Callable[[], Collection[str]]
    """Requirements whose code is still to come, as they are when the check runs."""
    new_test_files: tuple[str, ...] = ()
    known_ids: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    """Every path the candidate changes."""


CURRENT: contextvars.ContextVar[GateContext | None] = contextvars.ContextVar("llorch_gate_context", default=None)


class LoopGates:
    """The repository's gates plus the loop's own, and the runner that judges them."""

    def __init__(self, config: LoopConfig, repo_gates: Sequence[GateSpec], *, has_contracts: bool) -> None:
        self.config = config
        self.specs = list(repo_gates)
        tests = next((g for g in self.specs if g.kind == "tests"), None)
        # The tests-plan run uses the tests gate's interpreter when it is a python -m pytest command.
        self.python = tests.argv[0] if tests is not None and "-m" in tests.argv[:2] else sys.executable
        self.tests_env = dict(tests.env) if tests is not None else {}
        if has_contracts and not any(g.kind == "contract" for g in self.specs):
            # Our own validator, run in this process (it only reads the checkout's contract files):
            # the same checks as `python _contract_check.py`, without ~0.7 s of interpreter start.
            argv = (sys.executable, str(Path(_contract_check.__file__)), *config.contracts)
            self.specs.append(GateSpec(name=CONTRACTS_GATE, kind="contract", argv=argv, timeout_s=300, memory_mb=2048))

    def names(self) -> list[str]:
        return [g.name for g in self.specs]

    async def runner(self, gates: Sequence[GateSpec], checkout: Path, subject: str) -> list[GateResult]:
        """The merge queue's gate runner (``gates`` are this run's: the queue is given them fixed)."""
        ctx = CURRENT.get()
        results: list[GateResult] = []
        for spec in gates:
            if spec.name == CONTRACTS_GATE and ctx is not None and not self._touches_contracts(ctx):
                continue  # every contract on the integration branch passed this gate when it was merged
            if spec.name == CONTRACTS_GATE and spec.argv[1:2] == (str(Path(_contract_check.__file__)),):
                results.append(await asyncio.to_thread(self._contracts, spec, checkout, subject))
                continue
            result = await run_gate(spec, checkout, subject=subject)
            if spec.kind == "tests" and ctx is not None:
                result = self._ratchet(result, spec, checkout, ctx)
            results.append(result)
        if ctx is not None and ctx.item.kind == "test" and ctx.new_test_files:
            results.append(await self._tests_plan(checkout, subject, ctx))
        return results

    def _contracts(self, spec: GateSpec, checkout: Path, subject: str) -> GateResult:
        started = time.monotonic()
        lines, bad, checked = [], [], 0
        for f in _contract_check.files([checkout / d for d in self.config.contracts]):
            checked += 1
            rel = f.relative_to(checkout).as_posix()
            for problem in _contract_check.check_contract(f):
                bad.append(f"{rel}::contract")
                lines.append(f"FAILED {rel}::contract - {problem}")
        lines.append(f"{checked} contract file(s) checked, {len(bad)} problem(s)")
        reason = f"{len(bad)} problem(s): " + "; ".join(lines[:3]) if bad else f"{checked} contract file(s) valid"
        return GateResult(
            name=spec.name, kind=spec.kind, argv=spec.argv, status="fail" if bad else "pass", reason=reason,
            returncode=1 if bad else 0, timed_out=False, limit_hit=None, failing_tests=tuple(bad),
            failing_total=len(bad), stdout="\n".join(lines) + "\n", stderr="", output_dropped_bytes=0,
            isolation=Isolation(applied={"process": "in the loop's own process: our validator reads the files"}),
            duration_s=time.monotonic() - started, subject=subject,
        )  # fmt: skip

    def _touches_contracts(self, ctx: GateContext) -> bool:
        return any(PurePosixPath(p).is_relative_to(d) for p in ctx.changed for d in self.config.contracts)

    def _ratchet(self, result: GateResult, spec: GateSpec, checkout: Path, ctx: GateContext) -> GateResult:
        if result.status == "error":
            return result
        failures = read_failures(result, spec, checkout)
        if result.returncode not in (0, 5) and not failures:
            return result  # it failed without naming tests (a usage error, a crash): nothing to judge
        closing = set(ctx.item.requirements) if ctx.item.kind == "code" else set()
        open_now = set(ctx.open_requirements()) - closing
        citations = citations_by_node(checkout, self.config, list(ctx.known_ids))
        verdict = judge_tests(failures, citations, open_now)
        note = (f"judged by the loop's ratchet (exit status {result.returncode}; open requirements: "
                f"{', '.join(sorted(open_now)) or 'none'})")  # fmt: skip
        return replace(result, status="pass" if verdict.ok else "fail", reason=verdict.reason,
                       notes=(*result.notes, note))  # fmt: skip

    async def _tests_plan(self, checkout: Path, subject: str, ctx: GateContext) -> GateResult:
        item = ctx.item
        spec = GateSpec(
            name="tests-plan", kind="tests",
            argv=(self.python, "-m", "pytest", "-q", "-rfE", "--tb=short", "-p", "no:cacheprovider",
                  f"--junitxml={TESTS_PLAN_JUNIT}", *ctx.new_test_files),
            junit_xml=TESTS_PLAN_JUNIT, timeout_s=self.config.gate_timeout_s, memory_mb=4096, env=self.tests_env,
        )  # fmt: skip
        result = await run_gate(spec, checkout, subject=subject)
        if result.status == "error" and result.returncode is None:
            return result  # timed out, killed: it could not run
        failures = read_failures(result, spec, checkout)
        verdict = judge_new_tests(
            failures, result.returncode, files=ctx.new_test_files, expect=item.expect or "fail",
            targets=item.target.names,
        )  # fmt: skip
        if verdict.ok and (unknown := await self._unknown_fixtures(checkout, subject, ctx.new_test_files)):
            shown = "; ".join(f"{test} asks for {arg!r}" for test, arg in unknown[:3])
            verdict = Verdict(False, f"fixtures that nothing defines (the tests would error, not pass, once the code "
                                     f"exists): {shown}")  # fmt: skip
        return replace(result, status="pass" if verdict.ok else "fail", reason=verdict.reason)

    async def _unknown_fixtures(self, checkout: Path, subject: str, files: Sequence[str]) -> list[tuple[str, str]]:
        """Arguments of the new tests that no fixture provides (see :func:`._pycheck.unresolved_fixtures`),
        against the fixtures ``pytest --fixtures`` lists for the checkout without the new files (its
        plugins and conftest files). Nothing when the listing cannot be read: the check only rejects
        what it knows."""
        sources = {f: (checkout / f).read_text("utf-8", "replace") for f in files if (checkout / f).is_file()}
        if not any(unresolved_fixtures(src, ()) for src in sources.values()):
            return []  # no test asks for anything beyond its file and its parametrize
        ignore = [f"--ignore={f}" for f in files]
        spec = GateSpec(
            name="tests-plan-fixtures", kind="tests",
            argv=(self.python, "-m", "pytest", "--fixtures", "-q", "-p", "no:cacheprovider", *ignore,
                  *[d for d in self.config.tests if (checkout / d).is_dir()]),
            timeout_s=min(120.0, self.config.gate_timeout_s), memory_mb=4096, env=self.tests_env,
        )  # fmt: skip
        listed = await run_gate(spec, checkout, subject=subject, output_cap_bytes=1024 * 1024)
        known = fixture_names(listed.stdout)
        if "tmp_path" not in known:
            log.info("%s: pytest --fixtures listed no fixtures (%s); not checking the tests' arguments",
                     subject, listed.reason)  # fmt: skip
            return []
        return [u for src in sources.values() for u in unresolved_fixtures(src, known)]
