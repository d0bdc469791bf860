"""Planning a repository: read its spec and traceability at a commit, run its tests there, build the plan.

Everything is read from a snapshot of the commit (``git archive`` into a temporary folder) and
from ``git log`` of that commit, never from the caller's worktree; the tests gate runs on the
snapshot, sandboxed, so that "code failing its tests" is what the tests say, not a guess.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from llama_orch.agents._gates import GateResult, GateSpec, run_gate
from llama_orch.agents._git import Git
from llama_orch.agents._loop_config import LoopConfig, discover_specs, package_name, source_root
from llama_orch.agents._loop_repo import snapshot
from llama_orch.agents._plan import Plan, build_plan
from llama_orch.agents._spec_model import Spec
from llama_orch.agents._spec_parse import load_spec
from llama_orch.agents._trace import scan_commits
from llama_orch.agents._trace_contracts import scan_contracts
from llama_orch.agents._trace_model import TraceIndex, build_trace_index
from llama_orch.agents._trace_tests import scan_tests
from llama_orch.agents._verdict import TestFailure, cited_by, read_junit

__all__ = ["PlanResult", "SpecError", "citations_by_node", "plan_repository", "read_failures", "read_spec"]


class SpecError(ValueError):
    """The specs cannot be planned from: none found, duplicate ids, nothing stated."""


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    spec: Spec
    index: TraceIndex
    tests: GateResult | None
    spec_files: tuple[str, ...] = ()
    """The spec documents, relative to the repository (agents may not change them)."""


def read_spec(root: Path, config: LoopConfig) -> tuple[Spec, list[Path], list[str]]:
    """The spec under ``root`` (a checkout or snapshot), its files, and warnings; :class:`SpecError`
    when there is none or an id is stated twice."""
    paths = discover_specs(root, config)
    if not paths:
        where = ", ".join(config.specs) if config.specs is not None else "spec/, specs/, .specs/ or *.spec.md"
        raise SpecError(f"no specs found ({where}): write the requirements first, e.g. specs/requirements.md")
    spec = load_spec(paths, root=root, id_pattern=config.id_pattern)
    if not len(spec):
        raise SpecError(
            f"the specs ({', '.join(p.relative_to(root).as_posix() for p in paths)}) state no requirement: each "
            "needs a stable id first, e.g. '- [LIB-0001] The library MUST ...'"
        )
    duplicates = spec.duplicates()
    if duplicates:
        shown = "; ".join(
            f"{rid} at " + ", ".join(f"{r.source}:{r.line}" for r in reqs) for rid, reqs in list(duplicates.items())[:5]
        )
        raise SpecError(f"duplicate requirement ids: {shown} (ids are stable and unique: renumber the new one)")
    warnings = [i.message + f" ({i.source}:{i.line})" for i in spec.issues]
    return spec, paths, warnings


def citations_by_node(root: Path, config: LoopConfig, known: list[str]) -> dict[str, set[str]]:
    """Test node id (``path::Class::name``) → the requirement ids it cites, from a static scan."""
    out: dict[str, set[str]] = {}
    paths = [root / p for p in config.tests if (root / p).exists()]
    for c in scan_tests(paths, root, known, config.id_pattern):
        out.setdefault(c.name, set()).add(c.req_id)
    return out


def read_failures(result: GateResult, spec: GateSpec, checkout: Path) -> list[TestFailure]:
    """The failures of a tests gate: from its JUnit XML when it wrote one, else the names it printed."""
    if spec.junit_xml:
        report = checkout / spec.junit_xml
        try:
            if report.is_file() and not report.is_symlink():
                return read_junit(report.read_bytes(), checkout)
        except (OSError, ValueError):
            pass
    return [
        TestFailure(node=n, file=n.split("::", 1)[0], outcome="failure", exception=None, message="")
        for n in result.failing_tests
    ]


def failing_by_requirement(failures: list[TestFailure], citations: Mapping[str, set[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in failures:
        for req in cited_by(f, citations):
            out.setdefault(req, []).append(f.describe())
    return out


async def plan_repository(
    git: Git, commit: str, config: LoopConfig, *, run_tests: bool = True, python: str | None = None
) -> PlanResult:
    """Plan from ``commit`` (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="llorch-plan-") as tmp:
        root = await snapshot(git, commit, Path(tmp) / "tree")
        spec, spec_files, warnings = read_spec(root, config)
        contracts = [root / p for p in config.contracts if (root / p).exists()]
        citations = scan_contracts(contracts, root, config.id_pattern)
        tests_paths = [root / p for p in config.tests if (root / p).exists()]
        citations += scan_tests(tests_paths, root, spec.ids, config.id_pattern)
        citations += scan_commits(git.cwd, [commit], id_pattern=config.id_pattern)
        index = build_trace_index(spec, citations)
        package = package_name(root, config, spec_files)
        src = source_root(root, config, package)
        failing: dict[str, list[str]] | None = None
        status: str = "not-run"
        result: GateResult | None = None
        tests_gate = next((g for g in config.gate_specs(*([python] if python else []))), None)
        if run_tests and tests_gate is not None and tests_gate.kind == "tests" and index.requirements:
            result = await run_gate(tests_gate, root, subject=commit)
            failures = read_failures(result, tests_gate, root)
            nodes = citations_by_node(root, config, spec.ids)
            if result.status == "error":
                status = "error"
                warnings.append(f"the tests gate could not judge {commit[:12]}: {result.reason}")
                failing = None
            else:
                failing = failing_by_requirement(failures, nodes)
                status = "pass" if result.passed or (result.returncode == 5 and not failures) else "fail"
                uncited = [f for f in failures if not cited_by(f, nodes)]
                if uncited:
                    warnings.append(
                        f"{len(uncited)} failing test(s) cite no requirement (the loop cannot merge until they pass): "
                        + "; ".join(f.describe() for f in uncited[:3])
                    )
            result = replace(result, stdout=result.stdout[-4000:], stderr=result.stderr[-2000:])
        plan = build_plan(
            spec, index, root, base=commit, package=package, source_root=src,
            contract_dir=config.contracts[0] if config.contracts else "contracts",
            tests_dir=config.tests[0] if config.tests else "tests",
            failing=failing, tests_status=status, warnings=warnings,  # type: ignore[arg-type]
        )  # fmt: skip
        names: list[str] = []
        for p in spec_files:
            for f in sorted(p.rglob("*.md")) if p.is_dir() else [p]:
                names.append(f.relative_to(root).as_posix())
        return PlanResult(plan, spec, index, result, tuple(names))
