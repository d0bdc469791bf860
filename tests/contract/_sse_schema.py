"""The per-event schema of the task stream, as data.yaml declares it (OpenAPI 3.2 ``itemSchema``).

jsonschema validates the frame (``id``, ``event``, ``data``) but, as JSON Schema says it should,
treats ``contentMediaType``/``contentSchema`` as annotations; :func:`frame_problems` applies them
too: the ``data`` line must be JSON, valid against the schema the event's ``oneOf`` branch names.
Used by the drift test (server and YAML) and by the SDK's parser tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA_YAML = ROOT / "contracts" / "openapi" / "data.yaml"
STREAM = ("/v1/tasks/{task_id}/stream", "get")
BASE = "urn:llorch:data.yaml"

Json = dict[str, Any]


def load_data_yaml() -> Json:
    doc = yaml.safe_load(DATA_YAML.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _with_base(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (BASE + v if k == "$ref" and v.startswith("#") else _with_base(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_base(v) for v in node]
    return node


def _resolve(doc: Json, node: Json) -> Json:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class ItemSchema:
    """The stream's ``itemSchema`` of one OpenAPI document, ready to check frames against."""

    def __init__(self, doc: Json | None = None) -> None:
        self.doc = load_data_yaml() if doc is None else doc
        path, method = STREAM
        media = self.doc["paths"][path][method]["responses"]["200"]["content"]["text/event-stream"]
        self.schema = _resolve(self.doc, media["itemSchema"])
        resource = referencing.Resource.from_contents(
            self.doc, default_specification=referencing.jsonschema.DRAFT202012
        )
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resource(BASE, resource)

    def payload_schemas(self) -> dict[str, Json]:
        """Event name → the ``contentSchema`` of its ``data`` (``{"$ref": ...}``)."""
        out: dict[str, Json] = {}
        for branch in self.schema["oneOf"]:
            props = branch["properties"]
            out[props["event"]["const"]] = props["data"]["contentSchema"]
        return out

    def payload_models(self) -> dict[str, str]:
        """Event name → the component schema name its payload must validate against."""
        return {event: ref["$ref"].rsplit("/", 1)[-1] for event, ref in self.payload_schemas().items()}

    def _errors(self, schema: Json, value: Any) -> list[str]:
        validator = jsonschema.Draft202012Validator(_with_base(schema), registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(value)]

    def frame_problems(self, frame: Json) -> list[str]:
        """What is wrong with one event (``{"id": "1", "event": "token", "data": "{...}"}``)."""
        problems = self._errors(self.schema, frame)
        if problems:
            return problems
        content = self.payload_schemas()[frame["event"]]
        try:
            payload = json.loads(frame["data"])
        except ValueError as exc:
            return [f"data: not JSON ({exc})"]
        return [f"data: {p}" for p in self._errors(content, payload)]
