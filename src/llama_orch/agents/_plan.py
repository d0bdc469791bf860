"""The plan: work items per requirement, from the spec and the traceability index.

For each requirement, in spec order:

* **contract** (role contract-writer) when no contract cites it;
* **test** (test-writer) when no test cites it. Its gate: the new tests fail on today's code for
  the right reason (see :mod:`._verdict`), or, when the requirement's code already exists, pass;
* **code** (coder) when its tests fail today, or when its test is still to be written and its code
  does not exist yet. Its gate: its tests pass and nothing else regresses.

Dependencies: contract before test before code of the same requirement, and items expected to
touch the same file are serialised (in plan order, so the graph has no cycle). Waves are the depth
in that graph: wave 1 needs nothing, wave 2 needs only wave-1 items... A work item's id is
``<kind>:<requirement>``, stable across re-plans, so a re-plan after progress shows only what is
left and a resumed run knows its items again.

Where code goes: a requirement's code spans name its target, ``pkg.module.func`` (module
``pkg.module``, callable ``func``) or a path (``src/pkg/module.py``); otherwise the package's
``__init__.py``. Whether that code exists is read statically (the module file defines the name).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llama_orch.agents._prompts import Role
from llama_orch.agents._spec_model import Requirement, Spec
from llama_orch.agents._trace_model import TraceIndex

__all__ = ["ItemKind", "Plan", "Target", "WorkItem", "build_plan", "find_target"]

ItemKind = Literal["contract", "test", "code"]
KINDS: tuple[ItemKind, ...] = ("contract", "test", "code")
ROLE_OF: dict[str, Role] = {"contract": Role.CONTRACT_WRITER, "test": Role.TEST_WRITER, "code": Role.CODER}
_CODE_SPAN = re.compile(r"`([^`]+)`")
_DOTTED = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\s*(?:\(.*\))?$")
_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)*\.py$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Target(_Frozen):
    """Where a requirement's code goes."""

    module: str | None = None
    callable: str | None = None
    file: str
    exists: bool = False
    """The file exists and defines ``callable`` (or, without one, simply exists)."""

    @property
    def names(self) -> list[str]:
        """Names a right-reason ImportError/AttributeError/NameError may mention."""
        out = [self.callable or ""]
        if self.module:
            out += [self.module, self.module.rsplit(".", 1)[-1]]
        return [n for n in dict.fromkeys(out) if n]

    def import_line(self) -> str | None:
        if self.module and self.callable:
            return f"from {self.module} import {self.callable}"
        return f"import {self.module}" if self.module else None


class ItemInputs(_Frozen):
    requirement: str
    """``[ID] (LEVEL) text`` as stated."""
    source: str
    contracts: tuple[str, ...] = ()
    """Contract files citing the requirement."""
    tests: tuple[str, ...] = ()
    """Test files citing it."""
    failing: tuple[str, ...] = ()
    """Its failing tests (code items), as the tests gate named them."""


class WorkItem(_Frozen):
    id: str
    kind: ItemKind
    role: Role
    requirements: tuple[str, ...]
    title: str
    inputs: ItemInputs
    target: Target
    files: tuple[str, ...]
    """Files it is expected to write: items sharing one are serialised."""
    gate: str
    """Its acceptance, in words."""
    expect: Literal["fail", "pass"] | None = None
    """Test items: whether the new tests must fail (code to come) or pass (code exists)."""
    depends_on: tuple[str, ...] = ()
    wave: int = 1


class Plan(BaseModel):
    """Work items in waves; ``done`` lists requirements needing nothing more."""

    model_config = ConfigDict(extra="forbid")

    base: str
    """The commit planned from."""
    package: str | None
    source_root: str
    items: list[WorkItem] = Field(default_factory=list)
    done: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    tests_status: Literal["pass", "fail", "error", "not-run"] = "not-run"

    def item(self, item_id: str) -> WorkItem:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)

    @property
    def waves(self) -> list[list[WorkItem]]:
        out: dict[int, list[WorkItem]] = {}
        for it in self.items:
            out.setdefault(it.wave, []).append(it)
        return [out[w] for w in sorted(out)]

    def only(self, kinds: Iterable[str]) -> Plan:
        """The plan narrowed to some kinds, for the stage commands.

        A dependency on a contract item left out is dropped (tests may be written before their
        contract); a code item whose test item is left out cannot run (it needs failing tests to
        work against) and is left out too, said in ``warnings``."""
        keep = set(kinds)
        dropped = {it.id for it in self.items if it.kind not in keep}
        items, warnings = [], list(self.warnings)
        for it in self.items:
            if it.kind not in keep:
                continue
            hard = [d for d in it.depends_on if d in dropped and d.startswith("test:")]
            if hard:
                warnings.append(f"{it.id} waits for {', '.join(hard)}: run `llama-orch tests plan` first")
                dropped.add(it.id)
                continue
            items.append(it.model_copy(update={"depends_on": tuple(d for d in it.depends_on if d not in dropped)}))
        return self.model_copy(update={"items": _waves(items), "warnings": warnings})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {k: 0 for k in KINDS}
        for it in self.items:
            out[it.kind] += 1
        return out


def _module_file(source_root: str, module: str) -> str:
    base = "/".join(module.split("."))
    prefix = f"{source_root}/" if source_root else ""
    return f"{prefix}{base}.py"


def _defines(path: Path, name: str | None) -> bool:
    if not path.is_file():
        return False
    if name is None:
        return True
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def find_target(req: Requirement, root: Path, package: str | None, source_root: str) -> Target:
    """Where ``req``'s code goes (see the module docstring)."""
    for span in _CODE_SPAN.findall(req.text):
        span = span.strip()
        if _PATH.match(span) and not span.startswith(("tests/", "test_")):
            return Target(file=span, exists=(root / span).is_file())
        m = _DOTTED.match(span)
        if m and (package is None or m.group(1).split(".")[0] == package):
            module, _, func = m.group(1).rpartition(".")
            file = _module_file(source_root, module)
            pkg_init = f"{file[:-3]}/__init__.py"
            if (root / pkg_init).is_file():
                file = pkg_init
            return Target(module=module, callable=func, file=file, exists=_defines(root / file, func))
    if package:
        file = _module_file(source_root, package)[:-3] + "/__init__.py"
        return Target(module=package, file=file, exists=False)
    return Target(file="__init__.py", exists=False)


def _snake(req_id: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", req_id.lower()).strip("_")


def build_plan(
    spec: Spec,
    index: TraceIndex,
    root: Path,
    *,
    base: str,
    package: str | None,
    source_root: str,
    contract_dir: str = "contracts",
    tests_dir: str = "tests",
    failing: Mapping[str, Sequence[str]] | None = None,
    tests_status: Literal["pass", "fail", "error", "not-run"] = "not-run",
    warnings: Sequence[str] = (),
) -> Plan:
    """The plan for ``spec`` given what ``index`` found in the snapshot at ``root``.

    ``failing`` maps requirement ids to their failing tests (from a tests-gate run on the same
    snapshot); None when the tests were not run, in which case a tested requirement whose code does
    not exist is planned as code."""
    items: dict[str, list[WorkItem]] = {k: [] for k in KINDS}
    done: list[str] = []
    for req in spec.by_id.values():
        entry = index.requirements[req.id]
        target = find_target(req, root, package, source_root)
        contracts = tuple(dict.fromkeys(c.source for c in entry.contracts))
        tests = tuple(dict.fromkeys(c.source for c in entry.tests))
        level = f"({req.level.value}) " if req.level else ""
        inputs = ItemInputs(requirement=f"[{req.id}] {level}{req.text}", source=f"{req.source}:{req.line}",
                            contracts=contracts, tests=tests)  # fmt: skip
        fails = tuple((failing or {}).get(req.id, ()))
        deps: list[str] = []
        if not contracts:
            path = f"{contract_dir}/{_snake(req.id).replace('_', '-')}.schema.json"
            items["contract"].append(
                WorkItem(
                    id=f"contract:{req.id}", kind="contract", role=ROLE_OF["contract"], requirements=(req.id,),
                    title=f"contract for {req.id}", inputs=inputs, target=target, files=(path,),
                    gate=f"a valid contract (JSON Schema, OpenAPI or Pact) citing {req.id} in x-req-id; "
                         "the contracts gate and the ratchet on the tests pass",
                )
            )  # fmt: skip
            deps.append(f"contract:{req.id}")
        need_code = False
        if not tests:
            expect: Literal["fail", "pass"] = "pass" if target.exists else "fail"
            path = f"{tests_dir}/test_{_snake(req.id)}.py"
            why = ("fail on today's code for the right reason (an assertion, or the missing "
                   f"{' / '.join(target.names) or 'name'}), not a syntax or collection error") if expect == "fail" \
                else "pass: the code exists already"  # fmt: skip
            items["test"].append(
                WorkItem(
                    id=f"test:{req.id}", kind="test", role=ROLE_OF["test"], requirements=(req.id,),
                    title=f"tests for {req.id}", inputs=inputs, target=target, files=(path,),
                    gate=f"the new tests cite {req.id} and {why}", expect=expect, depends_on=tuple(deps),
                )
            )  # fmt: skip
            deps.append(f"test:{req.id}")
            need_code = expect == "fail"
        elif fails or (failing is None and not target.exists):
            need_code = True
        if need_code:
            items["code"].append(
                WorkItem(
                    id=f"code:{req.id}", kind="code", role=ROLE_OF["code"], requirements=(req.id,),
                    title=f"code for {req.id}", inputs=inputs.model_copy(update={"failing": fails}), target=target,
                    files=(target.file,), depends_on=tuple(deps),
                    gate=f"the tests of {req.id} pass; no other test regresses; every gate passes",
                )
            )  # fmt: skip
        if not deps and not need_code:
            done.append(req.id)
    ordered = [it for kind in KINDS for it in items[kind]]
    return Plan(
        base=base, package=package, source_root=source_root, items=_waves(_serialise(ordered)), done=done,
        warnings=list(warnings), tests_status=tests_status,
    )  # fmt: skip


def _serialise(items: list[WorkItem]) -> list[WorkItem]:
    """Each item also waits for the last earlier item that writes one of its files."""
    last_writer: dict[str, str] = {}
    out = []
    for it in items:
        deps = list(it.depends_on)
        for f in it.files:
            if (prior := last_writer.get(f)) is not None and prior not in deps:
                deps.append(prior)
            last_writer[f] = it.id
        out.append(it.model_copy(update={"depends_on": tuple(deps)}))
    return out


def _waves(items: list[WorkItem]) -> list[WorkItem]:
    wave: dict[str, int] = {}
    ids = {it.id for it in items}
    for it in items:  # dependencies always come earlier in the list
        wave[it.id] = 1 + max((wave.get(d, 0) for d in it.depends_on if d in ids), default=0)
    return sorted((it.model_copy(update={"wave": wave[it.id]}) for it in items), key=lambda i: i.wave)
