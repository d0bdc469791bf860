"""The OpenAPI document the running server serves at ``/openapi.json``.

It is *generated* from what the server really does (its route table and the pydantic models it
validates and answers with), never copied from the YAML files, so a test comparing the two catches
drift in either direction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from llama_orch.server._http import Route
from llama_orch_api import API_VERSION, EndEvent, MetricsEvent, StartedEvent, TokenEvent

REF = "#/components/schemas/{model}"

EVENT_MODELS: list[type[BaseModel]] = [StartedEvent, TokenEvent, MetricsEvent, EndEvent]
"""SSE payloads: not bodies of any operation, but part of the contract."""


def component_schemas(routes: Sequence[Route] | None = None) -> dict[str, Any]:
    """JSON Schemas of every wire model the routes use, keyed by model name."""
    if routes is None:
        from llama_orch.server.app import ROUTES

        routes = ROUTES
    modes: dict[type[BaseModel], Literal["validation", "serialization"]] = {}
    for route in routes:
        if route.request is not None:
            modes[route.request] = "validation"
        for model in route.responses.values():
            if model is not None:
                modes.setdefault(model, "serialization")
    for model in EVENT_MODELS:
        modes.setdefault(model, "serialization")
    _, top = models_json_schema(list(modes.items()), ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return {name: _json_schema_bounds(schema) for name, schema in defs.items()}


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_bounds(node: Any) -> Any:
    """pydantic leaves a bound on an annotated number inside a union (``Int | None`` with
    ``Field(ge=0)``) under its own name (``ge``); JSON Schema spells it ``minimum``."""
    if isinstance(node, dict):
        numeric = node.get("type") in ("integer", "number")
        return {(_BOUNDS[k] if numeric and k in _BOUNDS else k): _json_schema_bounds(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_schema_bounds(v) for v in node]
    return node


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def path_template(path: str) -> str:
    """The OpenAPI path of an aiohttp route: ``/v1/x/{id:[0-9]+}`` is ``/v1/x/{id}``."""
    # The regex may hold any character but a brace of its own (``{id:[^/]+[.][^/]+}``), or a
    # quantifier's braces one level deep (``{n:[0-9]{1,3}}``).
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):(?:[^{}]|\{[^{}]*\})+\}", r"{\1}", path)


def served_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {"operationId": route.operation_id, "responses": {}}
        template = path_template(route.path)
        params = [
            {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for seg in template.split("/")
            if seg.startswith("{") and seg.endswith("}")
        ]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in route.query]
        if params:
            op["parameters"] = params
        if route.request is not None:
            op["requestBody"] = {"required": True, "content": _ref(route.request)}
        for status, model in route.responses.items():
            entry: dict[str, Any] = {"description": status}
            if model is not None:
                entry["content"] = _ref(model)
            op["responses"][status] = entry
        paths.setdefault(template, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "llama-orch orchestratord (served)", "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": component_schemas(routes)},
    }
