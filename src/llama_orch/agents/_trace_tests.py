"""Tests that cite requirement ids, found statically (nothing is imported or run).

* pytest (``.py`` files): a test function (``test*``, also async, also methods of ``Test*``
  classes) whose class or function name contains an id normalized — ``AUTH-0001`` as
  ``auth_0001`` (case-insensitive), e.g. ``test_auth_0001_rejects_expired``, or in CamelCase
  words, e.g. ``TestAuth0001Expiry``; other id-shaped parts (``test_auth_0999``) are reported too;
  and ``@pytest.mark.req("AUTH-0001", ...)`` markers (also ``@mark.req``, ``requirement`` as the
  marker name) on the function, on its class, or in a module/class ``pytestmark``.
* Gherkin (``.feature`` files): ``@AUTH-0001`` tags before a Feature, Rule, Scenario, Scenario
  Outline/Template, Example or Examples, named by that element.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from llama_orch.agents._spec_model import compile_id_pattern
from llama_orch.agents._trace_contracts import _files, _rel
from llama_orch.agents._trace_model import Citation

MARKER_NAMES = ("req", "requirement")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])")
_GHERKIN = re.compile(
    r"^\s*(Feature|Rule|Scenario Outline|Scenario Template|Scenario|Example|Examples|Background):\s*(.*)$"
)


def _marker_ids(node: ast.expr) -> list[str] | None:
    """Ids given to a ``mark.req(...)`` call expression (None if ``node`` is not one)."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    func = node.func
    owner = func.value
    is_mark = (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark"
    )
    if not is_mark or func.attr not in MARKER_NAMES:
        return None
    out: list[str] = []
    for arg in node.args:
        items = arg.elts if isinstance(arg, ast.List | ast.Tuple) else [arg]
        out.extend(i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str))
    return out


def _pytestmark(body: Iterable[ast.stmt]) -> list[str]:
    out: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets):
            values = stmt.value.elts if isinstance(stmt.value, ast.List | ast.Tuple) else [stmt.value]
            for v in values:
                out.extend(_marker_ids(v) or [])
    return out


def _decorated(decorators: Iterable[ast.expr]) -> list[str]:
    return [i for d in decorators for i in (_marker_ids(d) or [])]


def _tests(tree: ast.Module) -> Iterator[tuple[str, str | None, int, list[str]]]:
    """(function, class or None, line, marker ids inherited and own) for each test function."""
    module_ids = _pytestmark(tree.body)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            yield node.name, None, node.lineno, module_ids + _decorated(node.decorator_list)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            class_ids = module_ids + _decorated(node.decorator_list) + _pytestmark(node.body)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    yield item.name, node.name, item.lineno, class_ids + _decorated(item.decorator_list)


def _name_ids(name: str, known: Iterable[str], id_pattern: str) -> list[str]:
    """Ids a test or class name contains: known ids normalized, then any other id-shaped part."""
    found: list[tuple[int, int, str]] = []
    # CamelCase class names are read as words too: TestAuth0003Cache -> test_auth_0003_cache.
    split = _CAMEL.sub("_", name)
    for req_id in known:
        token = re.escape(req_id.lower().replace("-", "_"))
        for m in re.finditer(rf"(?<![a-z0-9]){token}(?![0-9])", name.lower()):
            found.append((m.start(), m.end(), req_id))
        if not any(i == req_id for *_, i in found) and re.search(rf"(?<![a-z0-9]){token}(?![0-9])", split.lower()):
            found.append((len(name), len(name), req_id))
    shaped = re.sub(r"^test_?", "", name, flags=re.I).upper().replace("_", "-")
    offset = len(name) - len(shaped)
    for m in re.finditer(rf"(?<![A-Z0-9])(?:{id_pattern})(?![A-Z0-9])", shaped):
        start, end = m.start() + offset, m.end() + offset
        if not any(s < end and start < e for s, e, _ in found):
            found.append((start, end, m.group(0)))
    return [i for _, _, i in sorted(found)]


def scan_python_test(text: str, source: str, known: Iterable[str], id_pattern: str) -> list[Citation]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    known = list(known)
    out: list[Citation] = []
    for func, cls, line, marker_ids in _tests(tree):
        node_id = "::".join(p for p in (source, cls, func) if p)
        names = _name_ids(func, known, id_pattern) + (_name_ids(cls, known, id_pattern) if cls else [])
        for req_id in dict.fromkeys(names):
            out.append(Citation(req_id=req_id, kind="test-name", source=source, name=node_id, line=line))
        for req_id in dict.fromkeys(marker_ids):
            out.append(Citation(req_id=req_id, kind="test-marker", source=source, name=node_id, line=line))
    return out


def scan_feature(text: str, source: str, id_pattern: str) -> list[Citation]:
    id_re = compile_id_pattern(id_pattern)
    out: list[Citation] = []
    pending: list[tuple[str, int]] = []
    in_doc = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith(('"""', "```")):
            in_doc = not in_doc
            continue
        if in_doc or not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            for tag in line.split("#", 1)[0].split():
                if tag.startswith("@") and (m := id_re.fullmatch(tag[1:])):
                    pending.append((m.group(0), n))
            continue
        if m := _GHERKIN.match(raw):
            name = f"{m.group(1)}: {m.group(2).strip()}"
            for req_id, tag_line in pending:
                out.append(Citation(req_id=req_id, kind="gherkin-tag", source=source, name=name, line=tag_line))
        pending = []
    return out


def scan_tests(paths: list[Path], root: Path, known: Iterable[str], id_pattern: str) -> list[Citation]:
    """Citations in every ``.py`` and ``.feature`` file under ``paths``."""
    known = list(known)
    out: list[Citation] = []
    for f in _files(paths, {".py", ".feature"}):
        text = f.read_text(encoding="utf-8-sig", errors="replace")
        source = _rel(f, root)
        out.extend(scan_feature(text, source, id_pattern) if f.suffix == ".feature" else
                   scan_python_test(text, source, known, id_pattern))  # fmt: skip
    return out
