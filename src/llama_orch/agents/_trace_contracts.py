"""Contracts that cite requirement ids: OpenAPI and JSON Schema ``x-req-id``, Pact interactions.

* OpenAPI (a document with an ``openapi`` or ``swagger`` key): every object carrying ``x-req-id``
  (a string, possibly several ids, or a list of strings). On an operation it cites that operation
  (named by ``operationId``, else ``METHOD /path``), on a path item every operation of the path
  (``* /path``), under ``components/schemas/Name`` the schema ``Name`` (plus the pointer below it),
  anywhere else the JSON pointer.
* Pact (``interactions`` and ``consumer``/``provider``): an interaction whose ``description``,
  ``providerState`` (v2) or ``providerStates[].name`` (v3) mention an id.
* Any other JSON/YAML document with ``x-req-id`` objects counts as a JSON Schema.

YAML and JSON are read with line numbers (YAML's composer); a file that is neither is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from llama_orch.agents._spec_model import compile_id_pattern
from llama_orch.agents._trace_model import Citation, CitationKind

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_SUFFIXES = {".yaml", ".yml", ".json"}


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _walk(node: yaml.Node, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], yaml.MappingNode]]:
    if isinstance(node, yaml.MappingNode):
        yield path, node
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                yield from _walk(v, (*path, str(k.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, (*path, str(i)))


def _pointer(path: tuple[str, ...]) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)


def _values(node: yaml.Node) -> list[str]:
    if isinstance(node, yaml.ScalarNode):
        return [str(node.value)]
    if isinstance(node, yaml.SequenceNode):
        return [str(v.value) for v in node.value if isinstance(v, yaml.ScalarNode)]
    return []


def find_ids(id_re: re.Pattern[str], text: str) -> list[str]:
    """Every id in ``text``, in order (whole matches, whatever groups the pattern has)."""
    return [m.group(0) for m in id_re.finditer(text)]


def _ids(values: list[str], id_re: re.Pattern[str]) -> list[str]:
    """Ids in ``values``; a value with no id at all is kept raw (reported as an unknown citation)."""
    out: list[str] = []
    for value in values:
        found = find_ids(id_re, value)
        out.extend(found or [value.strip()])
    return out


def _openapi_name(path: tuple[str, ...], node: yaml.MappingNode) -> tuple[CitationKind, str]:
    if len(path) >= 2 and path[0] == "paths":
        if len(path) == 3 and path[2].lower() in _METHODS:
            op_id = _mapping(node).get("operationId")
            name = op_id.value if isinstance(op_id, yaml.ScalarNode) else f"{path[2].upper()} {path[1]}"
            return "openapi-operation", str(name)
        if len(path) == 2:
            return "openapi-operation", f"* {path[1]}"
    if len(path) >= 3 and path[:2] == ("components", "schemas"):
        rest = _pointer(path[3:]) if len(path) > 3 else ""
        return "openapi-schema", path[2] + rest
    return "openapi", _pointer(path)


def scan_contract(text: str, source: str, id_pattern: str) -> list[Citation]:
    """Citations in one contract document (see the module docstring)."""
    id_re = compile_id_pattern(id_pattern)
    root = _compose(text)
    if root is None:
        try:  # JSON that YAML refuses (tabs, for one): no line numbers then
            root = _compose(json.dumps(json.loads(text), indent=1))
        except ValueError:
            return []
        if root is None:
            return []
    top = _mapping(root)
    out: list[Citation] = []
    if "interactions" in top and ("consumer" in top or "provider" in top):
        for path, node in _walk(top["interactions"], ("interactions",)):
            if len(path) != 2:
                continue
            fields = _mapping(node)
            texts = [*_values(fields["description"])] if "description" in fields else []
            if "providerState" in fields:
                texts += _values(fields["providerState"])
            for _, state in _walk(fields.get("providerStates", yaml.SequenceNode("", []))):
                texts += _values(_mapping(state).get("name", yaml.SequenceNode("", [])))
            name = texts[0] if texts else _pointer(path)
            for req_id in dict.fromkeys(i for t in texts for i in find_ids(id_re, t)):
                out.append(Citation(req_id=req_id, kind="pact-interaction", source=source, name=name,
                                    line=node.start_mark.line + 1))  # fmt: skip
        return out
    is_openapi = "openapi" in top or "swagger" in top
    for path, node in _walk(root):
        value = _mapping(node).get("x-req-id")
        if value is None:
            continue
        kind, name = _openapi_name(path, node) if is_openapi else ("json-schema", _pointer(path))
        for req_id in _ids(_values(value), id_re):
            out.append(Citation(req_id=req_id, kind=kind, source=source, name=name, line=value.start_mark.line + 1))
    return out


def scan_contracts(paths: list[Path], root: Path, id_pattern: str) -> list[Citation]:
    """Citations in every ``.yaml``/``.yml``/``.json`` file under ``paths`` (files or folders)."""
    out: list[Citation] = []
    for f in _files(paths, _SUFFIXES):
        out.extend(scan_contract(f.read_text(encoding="utf-8-sig"), _rel(f, root), id_pattern))
    return out


def _files(paths: list[Path], suffixes: set[str]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes))
        elif p.is_file():
            files.append(p)
    return files


def _rel(f: Path, root: Path) -> str:
    try:
        return f.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f.as_posix()
