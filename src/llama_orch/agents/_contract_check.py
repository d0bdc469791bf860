"""Contract validation: OpenAPI (openapi-spec-validator), JSON Schema (jsonschema), Pact (structure).

Used twice: on a contract writer's proposal before it is proposed (in memory), and as the
``contracts`` gate on the merged tree (``python .../_contract_check.py PATH...``,
sandboxed like every gate; exit status 1 and one ``FAILED <file>::contract - <why>`` line per bad
file, the line pytest's summary uses, so gate results name the file).

A document is read as JSON (``.json``) or YAML (``.yaml``/``.yml``) and judged by its shape:

* ``openapi`` or ``swagger`` key: an OpenAPI document, validated against its version's schema;
  every operation must carry ``x-req-id`` (on itself or its path item);
* ``interactions`` with ``consumer``/``provider``: a Pact file; each interaction needs a
  ``description`` and a ``request`` with a ``method`` and ``path``;
* anything else: a JSON Schema, checked against its ``$schema`` meta-schema (draft 2020-12 when
  none is named); it must carry ``x-req-id`` somewhere.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["check_contract", "check_contract_text", "files", "main"]

SUFFIXES = (".json", ".yaml", ".yml")
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _load(text: str, name: str) -> Any:
    if name.endswith(".json"):
        return json.loads(text)
    return yaml.safe_load(text)


def _has_req_id(node: Any) -> bool:
    if isinstance(node, dict):
        return "x-req-id" in node or any(_has_req_id(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_req_id(v) for v in node)
    return False


def _openapi_problems(doc: dict[str, Any]) -> list[str]:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    try:
        validate(doc)
    except OpenAPIValidationError as exc:
        return [f"not valid OpenAPI: {exc.message}"]
    except Exception as exc:  # the validator raises its own errors for unusable documents
        return [f"not valid OpenAPI: {exc}"]
    problems = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method, op in item.items():
            if method in _METHODS and isinstance(op, dict) and "x-req-id" not in op and "x-req-id" not in item:
                problems.append(f"operation {method.upper()} {path} has no x-req-id")
    return problems


def _pact_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    interactions = doc.get("interactions")
    if not isinstance(interactions, list) or not interactions:
        return ["a Pact file needs a non-empty list of interactions"]
    for i, inter in enumerate(interactions):
        if not isinstance(inter, dict) or not isinstance(inter.get("description"), str):
            problems.append(f"interactions[{i}] needs a description")
            continue
        request = inter.get("request")
        if not isinstance(request, dict) or not request.get("method") or not request.get("path"):
            problems.append(f"interactions[{i}] needs a request with method and path")
    return problems


def _schema_problems(doc: Any) -> list[str]:
    from jsonschema import exceptions, validators

    if not isinstance(doc, dict):
        return ["a JSON Schema must be an object"]
    cls = validators.validator_for(doc, default=validators.Draft202012Validator)
    try:
        cls.check_schema(doc)
    except exceptions.SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(root)"
        return [f"not a valid JSON Schema at {where}: {exc.message}"]
    if not _has_req_id(doc):
        return ["the schema cites no requirement (no x-req-id)"]
    return []


def check_contract_text(text: str, name: str) -> list[str]:
    """What is wrong with one contract document (empty: nothing)."""
    try:
        doc = _load(text, name)
    except (ValueError, yaml.YAMLError) as exc:
        return [f"not valid {'JSON' if name.endswith('.json') else 'YAML'}: {exc}"]
    if isinstance(doc, dict) and ("openapi" in doc or "swagger" in doc):
        return _openapi_problems(doc)
    if isinstance(doc, dict) and "interactions" in doc and ("consumer" in doc or "provider" in doc):
        return _pact_problems(doc)
    return _schema_problems(doc)


def check_contract(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"cannot read: {exc}"]
    return check_contract_text(text, path.name)


def files(paths: Sequence[Path]) -> Iterator[Path]:
    """The contract documents under ``paths`` (files or folders), sorted."""
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES)
        elif p.is_file() and p.suffix in SUFFIXES:
            yield p


def main(argv: Sequence[str] | None = None) -> int:
    """Check every contract under the given files or folders; 1 if any is bad."""
    paths = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    bad = checked = 0
    for f in files(paths):
        checked += 1
        for problem in check_contract(f):
            bad += 1
            print(f"FAILED {f.as_posix()}::contract - {problem}")
    print(f"{checked} contract file(s) checked, {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
