"""Gates: the target repository's own checks (tests, lint, type check, contract validation), sandboxed.

A repository declares them in ``.llorch/gates.toml``::

    [[gates]]
    name = "tests"
    kind = "tests"                   # tests | lint | typecheck | contract
    argv = ["python", "-m", "pytest", "-q", "--junitxml=.llorch-out/junit.xml"]
    junit_xml = ".llorch-out/junit.xml"
    timeout_s = 900
    memory_mb = 4096                 # RLIMIT_AS; null for none
    max_procs = 256
    network = false                  # the default: a private network namespace

or under ``gates:`` in ``llorch.yaml`` (same fields). The merge queue reads them from the
*integration* head, never from the candidate, so a change cannot switch off the gates judging it.

A :class:`GateResult` is ``pass``, ``fail`` (the command ran and said no, failing tests named when
the output is pytest's or the gate wrote JUnit XML) or ``error`` (could not run, timed out, stopped
by the memory or process limit, killed by a signal).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llama_orch.agents._git import Git
from llama_orch.agents._reports import MAX_NAMES, failing_from_junit, failing_from_pytest
from llama_orch.agents._sandbox import Isolation, Limits, SandboxRun, SandboxSupport, run_sandboxed

__all__ = [
    "GATES_TOML",
    "GATES_YAML",
    "GateConfigError",
    "GateResult",
    "GateSpec",
    "load_gates",
    "load_gates_at",
    "parse_gates",
    "run_gate",
    "run_gates",
]

GATES_TOML = ".llorch/gates.toml"
GATES_YAML = "llorch.yaml"
GateKind = Literal["tests", "lint", "typecheck", "contract"]
GateStatus = Literal["pass", "fail", "error"]
MAX_JUNIT_BYTES = 16 * 1024 * 1024


class GateConfigError(ValueError):
    """The repository's gate configuration is malformed (which file and field is in the message)."""


class GateSpec(BaseModel):
    """One gate, as the repository declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    argv: tuple[str, ...] = Field(min_length=1)
    kind: GateKind = "tests"
    timeout_s: float = Field(default=600.0, gt=0, le=24 * 3600)
    memory_mb: int | None = Field(default=2048, gt=0)
    max_procs: int | None = Field(default=256, gt=0)
    network: bool = False
    junit_xml: str | None = None
    """A JUnit XML file the command writes, relative to the checkout: the failing tests are read from it."""
    env: dict[str, str] = Field(default_factory=dict)

    def limits(self, output_cap_bytes: int = 64 * 1024) -> Limits:
        return Limits(
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            max_procs=self.max_procs,
            network=self.network,
            output_cap_bytes=output_cap_bytes,
        )


@dataclass(frozen=True)
class GateResult:
    """How one gate went on one checkout."""

    name: str
    kind: GateKind
    argv: tuple[str, ...]
    status: GateStatus
    reason: str
    returncode: int | None
    timed_out: bool
    limit_hit: str | None
    failing_tests: tuple[str, ...]
    failing_total: int
    stdout: str
    stderr: str
    output_dropped_bytes: int
    isolation: Isolation
    duration_s: float
    subject: str | None = None
    """What it ran on (a tree or commit id), when the caller said."""
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_json(self) -> dict[str, Any]:
        """The ``test-result`` artifact's content."""
        return {
            "gate": self.name,
            "kind": self.kind,
            "argv": list(self.argv),
            "status": self.status,
            "reason": self.reason,
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "limit_hit": self.limit_hit,
            "failing_tests": list(self.failing_tests),
            "failing_total": self.failing_total,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "output_dropped_bytes": self.output_dropped_bytes,
            "isolation": self.isolation.to_json(),
            "duration_s": round(self.duration_s, 3),
            "subject": self.subject,
            "notes": list(self.notes),
        }


# -- configuration ------------------------------------------------------------------------------------


def parse_gates(text: str, *, source: str) -> list[GateSpec]:
    """Gates from the text of ``.llorch/gates.toml`` or ``llorch.yaml`` (``source`` tells which)."""
    try:
        data: Any = tomllib.loads(text) if source.endswith(".toml") else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise GateConfigError(f"{source}: not valid {'TOML' if source.endswith('.toml') else 'YAML'}: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise GateConfigError(f"{source}: expected a table/mapping at the top level")
    entries = data.get("gates", [])
    if not isinstance(entries, list):
        raise GateConfigError(f"{source}: `gates` must be a list")
    specs: list[GateSpec] = []
    for i, entry in enumerate(entries):
        try:
            specs.append(GateSpec.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(gate)'}: {e['msg']}" for e in exc.errors())
            raise GateConfigError(f"{source}: gates[{i}]: {problems}") from None
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GateConfigError(f"{source}: duplicate gate names: {', '.join(duplicates)}")
    return specs


def _pick(toml_text: str | None, yaml_text: str | None) -> list[GateSpec]:
    from_toml = parse_gates(toml_text, source=GATES_TOML) if toml_text is not None else None
    from_yaml = parse_gates(yaml_text, source=GATES_YAML) if yaml_text is not None else None
    if from_toml and from_yaml:
        raise GateConfigError(f"gates are declared in both {GATES_TOML} and {GATES_YAML}: keep one")
    return from_toml or from_yaml or []


def load_gates(checkout: str | os.PathLike[str]) -> list[GateSpec]:
    """The gates a checkout declares (none when it declares none)."""
    root = Path(checkout)
    toml_path, yaml_path = root / GATES_TOML, root / GATES_YAML
    return _pick(
        toml_path.read_text() if toml_path.is_file() else None,
        yaml_path.read_text() if yaml_path.is_file() else None,
    )


async def load_gates_at(git: Git, rev: str) -> list[GateSpec]:
    """The gates declared in commit ``rev`` (read from git objects, not from any worktree)."""

    async def show(path: str) -> str | None:
        result = await git("show", f"{rev}:{path}", check=False)
        return result.stdout if result.returncode == 0 else None

    return _pick(await show(GATES_TOML), await show(GATES_YAML))


# -- running ------------------------------------------------------------------------------------------


def _gate_env(spec: GateSpec, home: Path) -> dict[str, str]:
    # A fresh, minimal environment: nothing of ours (tokens, credentials) leaks into the gate.
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "CI": "1",
        "LLORCH_GATE": spec.name,
    }
    env.update(spec.env)
    return env


async def run_gate(
    spec: GateSpec,
    checkout: str | os.PathLike[str],
    *,
    subject: str | None = None,
    support: SandboxSupport | None = None,
    output_cap_bytes: int = 64 * 1024,
) -> GateResult:
    """Run one gate in ``checkout`` (which it may write to) and judge the outcome."""
    root = Path(checkout)
    junit = _junit_path(root, spec.junit_xml) if spec.junit_xml else None
    if junit is not None:
        junit.unlink(missing_ok=True)  # a stale report must not speak for this run
    home = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"llorch-gate-{spec.name}-"))
    started = time.monotonic()
    try:
        run = await run_sandboxed(
            spec.argv, cwd=root, env=_gate_env(spec, home), limits=spec.limits(output_cap_bytes), support=support
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, home, True)
    duration = time.monotonic() - started
    notes: list[str] = []
    failing = _failing(run, spec, junit, notes)
    status, reason = _judge(run, spec, failing)
    return GateResult(
        name=spec.name,
        kind=spec.kind,
        argv=spec.argv,
        status=status,
        reason=reason,
        returncode=run.returncode,
        timed_out=run.timed_out,
        limit_hit=run.limit_hit,
        failing_tests=tuple(failing[:MAX_NAMES]),
        failing_total=len(failing),
        stdout=run.stdout,
        stderr=run.stderr,
        output_dropped_bytes=run.stdout_dropped + run.stderr_dropped,
        isolation=run.isolation,
        duration_s=duration,
        subject=subject,
        notes=tuple(notes),
    )


async def run_gates(
    specs: Sequence[GateSpec],
    checkout: str | os.PathLike[str],
    *,
    subject: str | None = None,
    fail_fast: bool = False,
    support: SandboxSupport | None = None,
) -> list[GateResult]:
    """Run gates one after another (each with its own limits); with ``fail_fast``, stop at the first non-pass."""
    results: list[GateResult] = []
    for spec in specs:
        result = await run_gate(spec, checkout, subject=subject, support=support)
        results.append(result)
        if fail_fast and not result.passed:
            break
    return results


def _junit_path(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def _failing(run: SandboxRun, spec: GateSpec, junit: Path | None, notes: list[str]) -> list[str]:
    if spec.junit_xml and junit is None:
        notes.append(f"junit_xml {spec.junit_xml!r} points outside the checkout: ignored")
    if junit is not None and run.start_error is None:
        try:
            if junit.is_symlink() or not junit.is_file():
                notes.append(f"no JUnit report at {spec.junit_xml}")
            elif junit.stat().st_size > MAX_JUNIT_BYTES:
                notes.append(f"JUnit report {spec.junit_xml} is over {MAX_JUNIT_BYTES} bytes: not read")
            else:
                return failing_from_junit(junit.read_bytes())
        except (OSError, ValueError) as exc:
            notes.append(f"JUnit report {spec.junit_xml} unreadable: {exc}")
    return failing_from_pytest(run.stdout + "\n" + run.stderr)


def _judge(run: SandboxRun, spec: GateSpec, failing: Sequence[str]) -> tuple[GateStatus, str]:
    if run.start_error is not None:
        return "error", f"could not run: {run.start_error}"
    if run.limit_hit == "timeout":
        return "error", f"timed out after {spec.timeout_s:g} s: killed with everything it started"
    if run.limit_hit == "memory":
        return "error", f"stopped by the memory limit ({run.isolation.applied.get('memory', 'RLIMIT_AS')})"
    if run.limit_hit == "processes":
        return "error", f"stopped by the process limit ({run.isolation.applied.get('processes', 'max_procs')})"
    if run.signal is not None:
        return "error", f"killed by {_signal_name(run.signal)}"
    if run.returncode == 0:
        return "pass", "exit status 0"
    if failing:
        shown = ", ".join(failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
        return "fail", f"exit status {run.returncode}; {len(failing)} failing: {shown}"
    return "fail", f"exit status {run.returncode}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
