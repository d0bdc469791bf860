"""The loop's configuration in the target repository, with defaults that need none.

Read from ``[tool.llama-orch]`` in ``pyproject.toml`` or from the top level of
``.llama-orch.toml`` (not both)::

    [tool.llama-orch]
    specs = ["specs"]                 # default: spec/, specs/, .specs/ and every *.spec.md
    package = "strkit"                # default: the spec's "Package: `name`" line, else [project].name
    source = "src"                    # where the package lives; default src/ when src/<package> exists
    contracts = ["contracts"]
    tests = ["tests"]
    setup = "uv sync"                 # run in every new worktree (string or argv list); default none
    prefill = true                    # end prompts with the answer's start (default: on, off on mock pools)
    max_prompt_tokens = 1000          # cap on a prompt's size (default: the pool's context less max_tokens)
    attempts = 1                      # best-of-K proposals per work item
    max_tries = 3                     # rounds per work item before it is given up
    model_attempts = 3                # answers per model call when one is malformed
    stall_after = 4                   # the same failure this many times in a row stops the run

    [tool.llama-orch.gates]           # default: test = pytest (with llama-orch's interpreter)
    test = "python -m pytest"
    lint = "ruff check ."
    typecheck = ["mypy", "src"]

    [tool.llama-orch.roles.coder]     # per role: pool, model (model_ref), max_tokens, priority
    pool = "default"
    max_tokens = 1024

    [tool.llama-orch.budget]          # the CLI's --budget-* flags override these
    tokens = 200000
    time_s = 3600

    [tool.llama-orch.pr]              # impl apply --pr
    remote = "origin"
    tool = "gh"                       # gh | glab

A repository that also declares ``.llorch/gates.toml`` (the merge queue's own file) gets those gates
instead of ``gates`` here. Everything is read from a commit (the run's base), never from a worktree,
so a proposal can change neither the gates nor the rules that judge it.

A bad file is a :class:`LoopConfigError` naming the file and the key.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llama_orch.agents._gates import GateKind, GateSpec
from llama_orch.agents._prompts import Role
from llama_orch.agents._spec_model import DEFAULT_ID_PATTERN

__all__ = [
    "CONFIG_FILE",
    "BudgetConfig",
    "LoopConfig",
    "LoopConfigError",
    "PrConfig",
    "RoleConfig",
    "discover_specs",
    "load_loop_config",
    "parse_loop_config",
]

CONFIG_FILE = ".llama-orch.toml"
SPEC_DIRS = ("spec", "specs", ".specs")
JUNIT_PATH = ".llorch-out/junit.xml"
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache", ".ruff_cache"}
_PACKAGE_LINE = re.compile(r"^\s*(?:[-*]\s*)?\**Package\**:?\**\s*:?\s*`?([A-Za-z_][\w.]*)`?", re.M | re.I)


class LoopConfigError(ValueError):
    """The loop configuration is malformed (the file and key are in the message)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleConfig(_Strict):
    pool: str | None = None
    model: str | None = Field(default=None, description="model_ref asked for this role's tasks.")
    max_tokens: int | None = Field(default=None, ge=16)
    priority: Literal["interactive", "batch"] | None = None


class BudgetConfig(_Strict):
    tokens: int | None = Field(default=None, ge=1)
    time_s: float | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, ge=0)


class PrConfig(_Strict):
    remote: str | None = None
    tool: Literal["gh", "glab"] | None = None
    base: str | None = Field(default=None, description="The branch the pull request targets (default: HEAD's).")


Command = str | list[str]

# Role defaults: short answers go interactive, bulk generation batch (OC-CLI-2403).
ROLE_DEFAULTS: dict[Role, RoleConfig] = {
    Role.SPEC_WRITER: RoleConfig(max_tokens=768, priority="interactive"),
    Role.CONTRACT_WRITER: RoleConfig(max_tokens=512, priority="batch"),
    Role.TEST_WRITER: RoleConfig(max_tokens=768, priority="batch"),
    Role.CODER: RoleConfig(max_tokens=1024, priority="batch"),
    Role.REVIEWER: RoleConfig(max_tokens=384, priority="interactive"),
}


class LoopConfig(_Strict):
    """The validated loop configuration (see the module docstring); defaults fill what is absent."""

    specs: list[str] | None = None
    id_pattern: str = DEFAULT_ID_PATTERN
    package: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    source: str | None = None
    contracts: list[str] = Field(default_factory=lambda: ["contracts"])
    tests: list[str] = Field(default_factory=lambda: ["tests"])
    setup: Command | None = None
    setup_timeout_s: float = Field(default=900.0, gt=0)
    gates: dict[Literal["test", "lint", "typecheck"], Command] = Field(default_factory=dict)
    gate_timeout_s: float = Field(default=900.0, gt=0)
    roles: dict[Role, RoleConfig] = Field(default_factory=dict)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    pr: PrConfig = Field(default_factory=PrConfig)
    integration_branch: str = "llorch/integration"
    attempts: int = Field(default=1, ge=1, le=16)
    max_tries: int = Field(default=3, ge=1, le=50)
    model_attempts: int = Field(default=3, ge=1, le=10)
    stall_after: int = Field(default=4, ge=1, le=1000)
    determinism: Literal["strict", "best_effort"] = "best_effort"
    prefill: bool | None = Field(
        default=None,
        description="End prompts with the start of the answer (the edit block, the file's first lines) for "
        "the model to continue, and stop it where the block is complete; default: on, except on mock pools "
        "(whose scripts answer whole).",
    )
    max_context_files: int = Field(default=200, ge=0)
    max_prompt_tokens: int | None = Field(
        default=None,
        ge=64,
        description="The most tokens a prompt may take (default: the pool's context less the answer's max_tokens). "
        "Smaller prompts start sooner on a slow engine: the repository map shrinks to fit.",
    )

    @field_validator("id_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def role(self, role: Role) -> RoleConfig:
        """The role's settings, defaults filled in."""
        mine, base = self.roles.get(role, RoleConfig()), ROLE_DEFAULTS[role]
        return RoleConfig(
            pool=mine.pool or base.pool,
            model=mine.model or base.model,
            max_tokens=mine.max_tokens or base.max_tokens,
            priority=mine.priority or base.priority,
        )

    def gate_specs(self, python: str = sys.executable) -> list[GateSpec]:
        """The gates: ``gates`` as given, else pytest with ``python`` (JUnit XML for the verdicts)."""
        commands: dict[str, Command] = {str(k): v for k, v in self.gates.items()}
        default_test = "test" not in commands
        commands.setdefault("test", [python, "-m", "pytest"])
        specs = []
        kinds: tuple[tuple[str, GateKind], ...] = (("test", "tests"), ("lint", "lint"), ("typecheck", "typecheck"))
        for name, kind in kinds:
            if name not in commands:
                continue
            argv = _argv(commands[name])
            junit = None
            if kind == "tests" and any(Path(a).name == "pytest" or a == "pytest" for a in argv):
                if not any(a.startswith("--junitxml") for a in argv):
                    argv += [
                        "-q",
                        "-rfE",
                        "--tb=short",
                        "-p",
                        "no:cacheprovider",
                        "--continue-on-collection-errors",
                        f"--junitxml={JUNIT_PATH}",
                    ]
                junit = next((a.split("=", 1)[1] for a in argv if a.startswith("--junitxml=")), None)
            specs.append(
                GateSpec(
                    name="tests" if name == "test" else name,
                    kind=kind,
                    argv=tuple(argv),
                    junit_xml=junit,
                    timeout_s=self.gate_timeout_s,
                    memory_mb=4096,
                    # llama-orch's interpreter carries its own pytest plugins (hypothesis, pact,
                    # schemathesis...), which are not the project's: do not load them (4x faster).
                    env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"} if name == "test" and default_test else {},
                )
            )
        return specs

    def setup_argv(self) -> list[str] | None:
        return None if self.setup is None else _argv(self.setup)


def _argv(command: Command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def parse_loop_config(data: Mapping[str, Any], *, source: str) -> LoopConfig:
    """A :class:`LoopConfig` from a TOML table; ``source`` names it in errors."""
    try:
        config = LoopConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(table)'}: {e['msg']}" for e in exc.errors())
        raise LoopConfigError(f"{source}: {problems}") from None
    for name, command in config.gates.items():
        if not _argv(command):
            raise LoopConfigError(f"{source}: gates.{name}: the command is empty")
    if config.setup is not None and not config.setup_argv():
        raise LoopConfigError(f"{source}: setup: the command is empty")
    return config


def load_loop_config(read: Mapping[str, str | None] | Path) -> tuple[LoopConfig, str | None]:
    """The configuration and the file it came from (None: defaults only).

    ``read`` is a checkout folder, or a mapping of the two file names to their texts (None when
    absent), as read from a commit."""
    if isinstance(read, Path):
        texts = {name: _read(read / name) for name in ("pyproject.toml", CONFIG_FILE)}
    else:
        texts = dict(read)
    found: list[tuple[str, dict[str, Any]]] = []
    if (pyproject := texts.get("pyproject.toml")) is not None:
        table = _toml(pyproject, "pyproject.toml").get("tool", {})
        if isinstance(table, dict) and "llama-orch" in table:
            section = table["llama-orch"]
            if not isinstance(section, dict):
                raise LoopConfigError("pyproject.toml: [tool.llama-orch] must be a table")
            found.append(("pyproject.toml [tool.llama-orch]", section))
    if (own := texts.get(CONFIG_FILE)) is not None:
        found.append((CONFIG_FILE, _toml(own, CONFIG_FILE)))
    if len(found) > 1:
        raise LoopConfigError(f"the loop is configured in both pyproject.toml and {CONFIG_FILE}: keep one")
    if not found:
        return LoopConfig(), None
    source, data = found[0]
    return parse_loop_config(data, source=source), source


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoopConfigError(f"{source}: not valid TOML: {exc}") from None


def discover_specs(root: Path, config: LoopConfig) -> list[Path]:
    """Spec files and folders: ``specs`` from the config (relative to ``root``), else the defaults."""
    if config.specs is not None:
        return [root / p for p in config.specs if (root / p).exists()]
    found: list[Path] = [root / d for d in SPEC_DIRS if (root / d).is_dir()]
    inside = [d.resolve() for d in found]
    for path in sorted(_walk(root)):
        if path.name.endswith(".spec.md") and not any(path.resolve().is_relative_to(d) for d in inside):
            found.append(path)
    return found


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                if entry.name not in _SKIP_DIRS:
                    stack.append(entry)
            elif entry.is_file():
                out.append(entry)
    return out


def package_name(root: Path, config: LoopConfig, spec_files: list[Path]) -> str | None:
    """Where code goes: ``package`` from the config, the spec's ``Package:`` line, or the project name."""
    if config.package:
        return config.package
    for f in spec_files:
        for md in sorted(f.rglob("*.md")) if f.is_dir() else [f]:
            if m := _PACKAGE_LINE.search(md.read_text(encoding="utf-8-sig", errors="replace")):
                return m.group(1).split(".")[0]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
        except tomllib.TOMLDecodeError:
            name = None
        if isinstance(name, str) and name:
            return re.sub(r"[^A-Za-z0-9_]", "_", name).lower()
    return None


def source_root(root: Path, config: LoopConfig, package: str | None) -> str:
    """The folder packages live in, relative to ``root`` (``""`` for the root itself)."""
    if config.source is not None:
        return config.source.strip("/").removeprefix("./") if config.source not in (".", "./") else ""
    if package and (root / "src" / package).is_dir():
        return "src"
    if package and (root / package).is_dir():
        return ""
    return "src" if (root / "src").is_dir() else ""
