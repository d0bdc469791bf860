"""The OpenAPI document the running server serves at ``/openapi.json``.

It is *generated* from what the server really does (its route table and the pydantic models it
validates and answers with), never copied from the YAML files, so a test comparing the two catches
drift in either direction.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from llama_orch_api import (
    API_VERSION,
    AdmissionResponse,
    Capabilities,
    EndEvent,
    ErrorEnvelope,
    MetricsEvent,
    SessionInfo,
    StartedEvent,
    TaskRequest,
    TokenEvent,
)

REF = "#/components/schemas/{model}"

# operationId → (request body model, {status: response model or None for no body})
_E = ErrorEnvelope
OPERATIONS: dict[str, tuple[type[BaseModel] | None, dict[str, type[BaseModel] | None]]] = {
    "createTask": (
        TaskRequest,
        {"202": AdmissionResponse, "400": _E, "405": _E, "409": _E, "413": _E, "429": _E, "500": _E, "503": _E},
    ),
    "streamTask": (None, {"200": None, "400": _E, "404": _E, "500": _E}),
    "cancelTask": (None, {"204": None, "404": _E, "500": _E}),
    "getSession": (None, {"200": SessionInfo, "404": _E, "500": _E}),
    "deleteSession": (None, {"204": None, "404": _E, "500": _E}),
    "getCapabilities": (None, {"200": Capabilities, "500": _E}),
}

EVENT_MODELS: list[type[BaseModel]] = [StartedEvent, TokenEvent, MetricsEvent, EndEvent]


def component_schemas() -> dict[str, Any]:
    """JSON Schemas of every wire model, keyed by model name."""
    models: list[type[BaseModel]] = [
        TaskRequest,
        AdmissionResponse,
        ErrorEnvelope,
        SessionInfo,
        Capabilities,
        *EVENT_MODELS,
    ]
    modes = [(m, "validation" if m is TaskRequest else "serialization") for m in models]
    _, top = models_json_schema(modes, ref_template=REF)  # type: ignore[arg-type]
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def served_document(app: web.Application) -> dict[str, Any]:
    from llama_orch.server.app import ROUTES

    paths: dict[str, dict[str, Any]] = {}
    for method, path, _, operation_id in ROUTES:
        request_model, responses = OPERATIONS[operation_id]
        op: dict[str, Any] = {"operationId": operation_id, "responses": {}}
        params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{") and seg.endswith("}")]
        if params:
            op["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in params
            ]
        if request_model is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=request_model.__name__)}}},
            }
        for status, model in responses.items():
            entry: dict[str, Any] = {"description": status}
            if model is not None:
                entry["content"] = {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}
            op["responses"][status] = entry
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "llama-orch orchestratord (served)", "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": component_schemas()},
    }
