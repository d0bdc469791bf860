"""The hand-written OpenAPI files must agree with what the running server really does.

``contracts/openapi/{data,control}.yaml`` are the authoritative contract; orchestratord serves at
``GET /openapi.json`` a document *generated* from its route table and its pydantic models. These
tests start the real server, fetch that document over HTTP and fail on any drift between the two:
operations, response statuses, request/response body schemas and component schemas.

The comparator itself is tested on deliberately broken inputs (bottom of this file), so that a
comparator that reports nothing cannot make the drift tests pass silently.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pydantic
import pytest
import referencing
import referencing.jsonschema
import yaml
from openapi_spec_validator import validate as validate_openapi

import llama_orch_api
from llama_orch.engines.mock import MockSettings
from llama_orch.server.config import QueueConfig
from llama_orch.server.openapi import component_schemas
from tests.conftest import Serve, fast_config, parse_sse

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "contracts" / "openapi"
SPEC_FILES = ("data.yaml", "control.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
SCHEMA_REF = "#/components/schemas/"

Json = dict[str, Any]
OpKey = tuple[str, str, str]  # (path, method, operationId)


# -- loading ------------------------------------------------------------------------------------


def load_spec(name: str) -> Json:
    doc = yaml.safe_load((SPEC_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{name} is not a YAML mapping"
    return doc


@pytest.fixture(scope="module")
def specs() -> dict[str, Json]:
    return {name: load_spec(name) for name in SPEC_FILES}


@pytest.fixture
async def served(serve: Serve, http: aiohttp.ClientSession) -> Json:
    """The document the real server serves, fetched over HTTP."""
    base = await serve(None)
    async with http.get(f"{base}/openapi.json") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("application/json")
        doc = await resp.json()
    assert isinstance(doc, dict)
    return doc


# -- walking documents ----------------------------------------------------------------------------


def operations(doc: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in doc.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def is_planned(op: Json) -> bool:
    return op.get("x-llorch-status") == "planned"


def operation_set(doc: Json, *, include_planned: bool = False) -> set[OpKey]:
    return {
        (path, method, op["operationId"])
        for path, method, op in operations(doc)
        if include_planned or not is_planned(op)
    }


def find_operation(specs: dict[str, Json], path: str, method: str) -> tuple[Json, Json]:
    """(document, operation) of ``method path`` in the YAML files; fails when absent."""
    for doc in specs.values():
        op = doc.get("paths", {}).get(path, {}).get(method)
        if op is not None:
            return doc, op
    raise AssertionError(f"{method.upper()} {path} is not in {', '.join(SPEC_FILES)}")


def resolve(doc: Json, node: Json) -> Json:
    """Follow local ``$ref`` chains (``#/components/...``) within ``doc``."""
    seen: set[str] = set()
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local refs are supported, got {ref}"
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def ref_name(ref: str) -> str:
    assert ref.startswith(SCHEMA_REF), f"unexpected $ref {ref}"
    return ref[len(SCHEMA_REF) :]


def json_body_schema_name(doc: Json, holder: Json | None) -> str | None:
    """The component schema name of an ``application/json`` body (request body or response)."""
    if holder is None:
        return None
    holder = resolve(doc, holder)
    media = holder.get("content", {}).get("application/json")
    if media is None:
        return None
    schema = media.get("schema", {})
    if "$ref" not in schema:
        return "<inline>"
    return ref_name(schema["$ref"])


# -- schema normalisation and comparison ----------------------------------------------------------

# Keys that document a schema without changing which values it accepts.
IGNORED_KEYS = frozenset(
    {"description", "title", "examples", "example", "default", "format", "deprecated", "readOnly", "writeOnly"}
)
# Keys compared verbatim.
SCALAR_KEYS = (
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
)
NULL = {"type": ["null"]}


def normalize(schema: Any) -> Any:
    """A canonical form of a JSON Schema in which equivalent spellings compare equal.

    ``anyOf: [X, {type: null}]`` and ``type: [X, 'null']`` both become X plus ``nullable: True``;
    ``$ref`` becomes ``ref: <name>``; enums and ``required`` are sorted; ``additionalProperties:
    true`` equals its absence; documentation-only keys are dropped. Any other key is kept
    verbatim, so that an unexpected construct shows up as a difference instead of being ignored.
    """
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise TypeError(f"not a schema: {schema!r}")
    out: dict[str, Any] = {}
    nullable = False
    if "$ref" in schema:
        out["ref"] = ref_name(schema["$ref"])
    types = schema.get("type")
    if types is not None:
        tset = set(types) if isinstance(types, list) else {types}
        if "null" in tset and len(tset) > 1:
            nullable = True
            tset.discard("null")
        out["type"] = sorted(tset)
    if "enum" in schema:
        values = list(schema["enum"])
        if None in values:
            nullable = True
            values = [v for v in values if v is not None]
        out["enum"] = sorted(values, key=json.dumps)
    for key in SCALAR_KEYS:
        if key in schema:
            out[key] = schema[key]
    if "properties" in schema:
        out["properties"] = {name: normalize(sub) for name, sub in schema["properties"].items()}
    if schema.get("required"):
        out["required"] = sorted(schema["required"])
    if "items" in schema:
        out["items"] = normalize(schema["items"])
    if "additionalProperties" in schema and schema["additionalProperties"] is not True:
        extra = schema["additionalProperties"]
        out["additionalProperties"] = False if extra is False else normalize(extra)
    if "allOf" in schema:
        out["allOf"] = sorted((normalize(s) for s in schema["allOf"]), key=json.dumps)
    for key in ("anyOf", "oneOf"):
        if key not in schema:
            continue
        variants = [normalize(s) for s in schema[key]]
        others = [v for v in variants if v != NULL]
        if len(others) < len(variants):
            nullable = True
        if len(others) == 1 and not set(others[0]) & set(out):
            out.update(others[0])
            nullable = nullable or bool(others[0].get("nullable"))
        else:
            out[key] = sorted(others, key=json.dumps)
    handled = {"$ref", "type", "enum", "properties", "required", "items", "additionalProperties", "allOf"}
    handled |= {"anyOf", "oneOf", *SCALAR_KEYS, *IGNORED_KEYS}
    for key, value in schema.items():
        if key not in handled and not key.startswith("x-"):
            out[f"other:{key}"] = value
    if nullable:
        out["nullable"] = True
    return out


def diff_normalized(served: Any, spec: Any, where: str) -> list[str]:
    if isinstance(served, dict) and isinstance(spec, dict):
        problems: list[str] = []
        for key in sorted(set(served) | set(spec)):
            if key not in spec:
                problems.append(f"{where}.{key}: missing from the YAML (served: {served[key]!r})")
            elif key not in served:
                problems.append(f"{where}.{key}: only in the YAML ({spec[key]!r}), not served")
            else:
                problems.extend(diff_normalized(served[key], spec[key], f"{where}.{key}"))
        return problems
    if served != spec:
        return [f"{where}: served {served!r} != YAML {spec!r}"]
    return []


def compare_schemas(served: Json, spec_schemas: dict[str, Json]) -> list[str]:
    """Differences between the served component schemas and those of each YAML file.

    Every schema the server serves must exist in at least one YAML file, and must be equal (after
    :func:`normalize`) in every YAML file that defines it.
    """
    problems: list[str] = []
    for name, schema in sorted(served.items()):
        holders = {file: schemas[name] for file, schemas in spec_schemas.items() if name in schemas}
        if not holders:
            problems.append(f"{name}: served, but not in components.schemas of any YAML file")
            continue
        for file, spec in sorted(holders.items()):
            problems.extend(diff_normalized(normalize(schema), normalize(spec), f"{file}:{name}"))
    return problems


def yaml_schemas(specs: dict[str, Json]) -> dict[str, Json]:
    return {file: doc.get("components", {}).get("schemas", {}) for file, doc in specs.items()}


def compare_operations(served: Json, specs: dict[str, Json]) -> list[str]:
    """Differences between the served operations and the YAML's implemented (not planned) ones."""
    served_ops = operation_set(served)
    spec_ops: set[OpKey] = set()
    for doc in specs.values():
        spec_ops |= operation_set(doc)
    problems = [f"served but not in the YAML (or marked planned): {op}" for op in sorted(served_ops - spec_ops)]
    problems += [f"in the YAML but not served: {op}" for op in sorted(spec_ops - served_ops)]
    return problems


def compare_responses(served: Json, specs: dict[str, Json]) -> list[str]:
    """Each served operation's statuses and JSON bodies must be declared the same way in the YAML."""
    problems: list[str] = []
    for path, method, op in operations(served):
        where = f"{method.upper()} {path}"
        try:
            doc, spec_op = find_operation(specs, path, method)
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        served_req = json_body_schema_name(served, op.get("requestBody"))
        spec_req = json_body_schema_name(doc, spec_op.get("requestBody"))
        if served_req != spec_req:
            problems.append(f"{where}: request body served {served_req}, YAML {spec_req}")
        spec_responses = spec_op.get("responses", {})
        for status, response in op.get("responses", {}).items():
            if status not in spec_responses:
                problems.append(f"{where}: status {status} served but not declared in the YAML")
                continue
            served_body = json_body_schema_name(served, response)
            spec_body = json_body_schema_name(doc, spec_responses[status])
            if served_body != spec_body:
                problems.append(f"{where} {status}: JSON body served {served_body}, YAML {spec_body}")
    return problems


# -- the drift tests (real server over HTTP) ----------------------------------------------------


async def test_served_operations_match_yaml(served: Json, specs: dict[str, Json]) -> None:
    assert compare_operations(served, specs) == []
    # Non-vacuous: the server does serve operations, and all of them were compared.
    assert {op for _, _, op in operation_set(served)} >= {"createTask", "streamTask", "getCapabilities"}


async def test_served_component_schemas_match_yaml(served: Json, specs: dict[str, Json]) -> None:
    served_schemas = served["components"]["schemas"]
    # The wire models the brief names must all be among what is compared.
    assert set(served_schemas) >= {
        "TaskRequest",
        "AdmissionResponse",
        "ErrorEnvelope",
        "SessionInfo",
        "Capabilities",
        "PoolCapability",
        "StartedEvent",
        "TokenEvent",
        "MetricsEvent",
        "EndEvent",
        "KvHint",
        "Priority",
        "Determinism",
        "Workload",
        "ErrorCode",
    }
    problems = compare_schemas(served_schemas, yaml_schemas(specs))
    assert problems == [], "YAML component schemas drifted from the server's:\n" + "\n".join(problems)


async def test_served_response_statuses_and_bodies_are_declared(served: Json, specs: dict[str, Json]) -> None:
    problems = compare_responses(served, specs)
    assert problems == [], "\n".join(problems)


async def test_served_version_is_the_api_version(served: Json) -> None:
    assert served["info"]["version"] == llama_orch_api.API_VERSION


async def test_served_document_is_valid_openapi(served: Json) -> None:
    validate_openapi(served)


@pytest.fixture
async def answered(serve: Serve, http: aiohttp.ClientSession) -> dict[tuple[str, str], set[str]]:
    """Provoke every status the server can be made to answer; {(path, method): statuses}.

    A fixture, so that a failure here is an error of the tests using it, never their expected
    failure. Each response must echo the caller's ``X-Correlation-Id`` (OC-CLI-2701).
    """
    answered: dict[tuple[str, str], set[str]] = {}
    cid = "drift-check.1"

    async def call(
        method: str, template: str, url: str, as_method: str | None = None, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        """``as_method``: the operation the answer is filed under (for a method the path lacks)."""
        headers = {"X-Correlation-Id": cid, **kwargs.pop("headers", {})}
        async with http.request(method, url, headers=headers, **kwargs) as resp:
            await resp.read()
        assert resp.headers.get("X-Correlation-Id") == cid, f"{method} {url}: correlation id not echoed"
        answered.setdefault((template, (as_method or method).lower()), set()).add(str(resp.status))
        return resp

    base = await serve(None)
    tasks, stream, cancel = "/v1/tasks", "/v1/tasks/{task_id}/stream", "/v1/tasks/{task_id}/cancel"
    session = "/v1/sessions/{session_id}"
    await call("POST", tasks, base + tasks, json={"task_id": "d1", "session_id": "s1", "prompt": "hi", "max_tokens": 2})
    await call("POST", tasks, base + tasks, json={"task_id": "d1", "prompt": "hi"})  # 409 TASK_EXISTS
    await call("POST", tasks, base + tasks, data=b"{not json")  # 400
    await call("POST", tasks, base + tasks, data=io.BytesIO(b"x" * (2 << 20)))  # 413
    await call("PUT", tasks, base + tasks, as_method="post")  # 405
    await call("GET", stream, base + "/v1/tasks/d1/stream")  # 200, read to the end
    await call("GET", stream, base + "/v1/tasks/d1/stream", headers={"Last-Event-ID": "x"})  # 400
    await call("GET", stream, base + "/v1/tasks/nope/stream")  # 404
    await call("POST", cancel, base + "/v1/tasks/d1/cancel")  # 204 (already ended)
    await call("POST", cancel, base + "/v1/tasks/nope/cancel")  # 404
    await call("GET", session, base + "/v1/sessions/s1")  # 200
    await call("DELETE", session, base + "/v1/sessions/s1")  # 204
    await call("GET", session, base + "/v1/sessions/s1")  # 404
    await call("DELETE", session, base + "/v1/sessions/s1")  # 404
    await call("GET", "/v1/capabilities", base + "/v1/capabilities")  # 200

    # A pool with one slot and a queue of one, busy with a slow task: 429 DEADLINE_UNMET, then 429 full.
    busy = await serve(
        fast_config(queue=QueueConfig(capacity=1), mock=MockSettings(tokens_per_s=1, first_token_ms=1, slots=1))
    )
    first = await call("POST", tasks, busy + tasks, json={"prompt": "a", "max_tokens": 1000})
    assert first.status == 202
    late = await call("POST", tasks, busy + tasks, json={"prompt": "b", "max_tokens": 1000, "deadline_ms": 1})
    assert late.status == 429
    queued = await call("POST", tasks, busy + tasks, json={"prompt": "c", "max_tokens": 1000})
    assert queued.status == 202
    full = await call("POST", tasks, busy + tasks, json={"prompt": "d", "max_tokens": 1000})
    assert full.status == 429
    assert full.headers["Retry-After"].isdigit() and full.headers["X-Backoff-Ms"].isdigit()

    assert answered[(tasks, "post")] == {"202", "400", "405", "409", "413", "429"}
    return answered


async def test_statuses_the_server_answers_are_declared_in_yaml(
    answered: dict[tuple[str, str], set[str]], specs: dict[str, Json]
) -> None:
    problems = []
    for (path, method), statuses in sorted(answered.items()):
        _, op = find_operation(specs, path, method)
        missing = statuses - set(op["responses"])
        if missing:
            problems.append(f"{method.upper()} {path}: answered {sorted(missing)}, not declared in the YAML")
    assert problems == [], "\n".join(problems)


async def test_statuses_the_server_answers_are_declared_in_the_served_document(
    answered: dict[tuple[str, str], set[str]], served: Json
) -> None:
    problems = []
    for (path, method), statuses in sorted(answered.items()):
        op = served["paths"][path][method]
        missing = statuses - set(op["responses"])
        if missing:
            problems.append(f"{method.upper()} {path}: answered {sorted(missing)}, not in /openapi.json")
    assert problems == [], "\n".join(problems)


# -- the YAML documents on their own --------------------------------------------------------------


@pytest.mark.parametrize("name", SPEC_FILES)
def test_yaml_is_valid_openapi_32(name: str) -> None:
    # 3.2 for the stream's per-event itemSchema; openapi-spec-validator checks 3.2 documents.
    doc = load_spec(name)
    assert str(doc["openapi"]).startswith("3.2")
    validate_openapi(doc)


@pytest.mark.parametrize("name", SPEC_FILES)
def test_yaml_version_is_the_api_version(name: str) -> None:
    assert load_spec(name)["info"]["version"] == llama_orch_api.API_VERSION


def test_operation_ids_are_unique_and_every_operation_is_documented(specs: dict[str, Json]) -> None:
    seen: dict[str, str] = {}
    for file, doc in specs.items():
        for path, method, op in operations(doc):
            where = f"{file}: {method.upper()} {path}"
            op_id = op.get("operationId")
            assert op_id, f"{where} has no operationId"
            assert op_id not in seen, f"operationId {op_id} used by {seen[op_id]} and {where}"
            seen[op_id] = where
            assert op.get("x-req-id"), f"{where} has no x-req-id"
            assert op.get("x-llorch-status") in (None, "planned"), f"{where}: unknown x-llorch-status"
            assert any(
                "examples" in media
                for holder in [op.get("requestBody", {}), *op["responses"].values()]
                for media in resolve(doc, holder).get("content", {}).values()
            ), f"{where} has no examples"


def test_control_plane_paths_from_the_seed_are_declared(specs: dict[str, Json]) -> None:
    control = specs["control.yaml"]
    declared = {(path, method) for path, method, _ in operations(control)}
    wanted = {
        ("/v1/capabilities", "get"),
        ("/v1/catalog/models", "post"),
        ("/v1/catalog/models", "get"),
        ("/v1/catalog/models/{id}", "get"),
        ("/v1/catalog/models/{id}", "delete"),
        ("/v1/catalog/models/{id}/verify", "post"),
        ("/v1/catalog/models/{id}/state", "post"),
        ("/v1/pools/{id}/health", "get"),
        ("/v1/pools/{id}/drain", "post"),
        ("/v1/pools/{id}/reload", "post"),
        ("/v1/replicasets", "get"),
        ("/v1/artifacts", "post"),
        ("/v1/artifacts", "get"),
        ("/v1/artifacts/{id}", "get"),
    }
    assert wanted <= declared, f"missing: {sorted(wanted - declared)}"


def test_data_plane_errors_are_documented_with_the_envelope(specs: dict[str, Json]) -> None:
    data = specs["data.yaml"]
    statuses: set[str] = set()
    for path, method, op in operations(data):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                statuses.add(status)
                name = json_body_schema_name(data, response)
                assert name == "ErrorEnvelope", f"{method.upper()} {path} {status} body is {name}"
    assert statuses >= {"400", "404", "405", "409", "413", "429", "500", "503"}
    create = data["paths"]["/v1/tasks"]["post"]["responses"]
    assert {"Retry-After", "X-Backoff-Ms"} <= set(resolve(data, create["429"])["headers"])
    for path, method, op in operations(data):
        names = {resolve(data, p)["name"] for p in op.get("parameters", [])}
        assert "X-Correlation-Id" in names, f"{method.upper()} {path}: no X-Correlation-Id request header"
        for status, response in op["responses"].items():
            headers = resolve(data, response).get("headers", {})
            assert "X-Correlation-Id" in headers, f"{method.upper()} {path} {status}: no X-Correlation-Id"


def test_sse_events_name_the_payload_models(specs: dict[str, Json]) -> None:
    stream = specs["data.yaml"]["paths"]["/v1/tasks/{task_id}/stream"]["get"]
    declared = stream["x-sse-events"]
    assert declared == {event: model.__name__ for event, model in llama_orch_api.SSE_EVENTS.items()}
    schemas = specs["data.yaml"]["components"]["schemas"]
    assert set(declared.values()) <= set(schemas)
    # The stream examples are real SSE whose payloads validate against the models.
    examples = stream["responses"]["200"]["content"]["text/event-stream"]["examples"]
    for name, example in examples.items():
        events = parse_sse(example["value"])
        assert events, f"example {name} has no events"
        assert events[-1].event in ("end", "error"), f"example {name} does not end with a terminal event"
        for event in events:
            assert event.id is not None and event.id.isdigit()
            llama_orch_api.SSE_EVENTS[event.event].model_validate(event.data)


def _schema_examples(doc: Json) -> Iterator[tuple[str, Json, Any, bool]]:
    """(where, schema, example value, implemented) for every JSON example in ``doc``."""
    for path, method, op in operations(doc):
        holders = [("request", op.get("requestBody")), *op["responses"].items()]
        for label, holder in holders:
            if holder is None:
                continue
            media = resolve(doc, holder).get("content", {}).get("application/json")
            if media is None:
                continue
            for name, example in media.get("examples", {}).items():
                where = f"{method.upper()} {path} {label} example {name}"
                yield where, media["schema"], resolve(doc, example)["value"], not is_planned(op)


def _with_base(node: Any, base: str) -> Any:
    if isinstance(node, dict):
        return {k: (base + v if k == "$ref" and v.startswith("#") else _with_base(v, base)) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_base(v, base) for v in node]
    return node


@pytest.mark.parametrize("name", SPEC_FILES)
def test_json_examples_validate_against_their_schemas(name: str) -> None:
    doc = load_spec(name)
    base = f"urn:llorch:{name}"
    resource = referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(base, resource)
    checked = 0
    for where, schema, value, implemented in _schema_examples(doc):
        validator = jsonschema.Draft202012Validator(_with_base(schema, base), registry=registry)
        errors = [e.message for e in validator.iter_errors(value)]
        assert errors == [], f"{name}: {where}: {errors}"
        if implemented and "$ref" in schema:
            # The models are stricter than JSON Schema can say (e.g. exactly one of prompt/inputs).
            model = getattr(llama_orch_api, ref_name(schema["$ref"]))
            try:
                model.model_validate(value)
            except pydantic.ValidationError as exc:
                pytest.fail(f"{name}: {where} is rejected by {model.__name__}: {exc}")
        checked += 1
    assert checked >= 5


# -- the comparator detects drift (so the tests above cannot pass vacuously) ---------------------


def test_normalize_treats_equivalent_nullable_spellings_as_equal() -> None:
    pydantic_style = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}], "default": None, "title": "X"}
    yaml_style = {"type": ["integer", "null"], "minimum": 0, "description": "doc only"}
    assert diff_normalized(normalize(pydantic_style), normalize(yaml_style), "x") == []
    ref_pydantic = {"anyOf": [{"$ref": "#/components/schemas/KvHint"}, {"type": "null"}], "default": None}
    ref_yaml = {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/KvHint"}]}
    assert diff_normalized(normalize(ref_pydantic), normalize(ref_yaml), "x") == []
    assert normalize({"type": "object", "additionalProperties": True}) == normalize({"type": "object"})


def test_yaml_schemas_match_the_models_before_mutation(specs: dict[str, Json]) -> None:
    """The baseline for the mutation tests below: no difference before anything is broken."""
    assert compare_schemas(component_schemas(), yaml_schemas(specs)) == []


class Schemas:
    """Mutable access to a schema by name, in whichever YAML file defines it (data.yaml first)."""

    def __init__(self, by_file: dict[str, dict[str, Json]]) -> None:
        self.by_file = by_file

    def __getitem__(self, name: str) -> Json:
        for schemas in self.by_file.values():
            if name in schemas:
                return schemas[name]
        raise KeyError(name)

    def __delitem__(self, name: str) -> None:
        for schemas in self.by_file.values():
            schemas.pop(name, None)


def _drop_property(s: Schemas) -> None:
    del s["TaskRequest"]["properties"]["seed"]


def _change_type(s: Schemas) -> None:
    s["AdmissionResponse"]["properties"]["queue_position"]["type"] = "string"


def _drop_nullability(s: Schemas) -> None:
    s["SessionInfo"]["properties"]["pool"]["type"] = "string"


def _add_nullability(s: Schemas) -> None:
    s["TokenEvent"]["properties"]["t"]["type"] = ["string", "null"]


def _drop_required(s: Schemas) -> None:
    s["StartedEvent"]["required"].remove("waited_ms")


def _drop_enum_value(s: Schemas) -> None:
    s["ErrorCode"]["enum"].remove("TASK_EXISTS")


def _change_item_ref(s: Schemas) -> None:
    s["PoolCapability"]["properties"]["workloads"]["items"]["$ref"] = "#/components/schemas/Priority"


def _change_array_item_type(s: Schemas) -> None:
    s["TaskRequest"]["properties"]["inputs"]["items"]["type"] = "integer"


def _allow_unknown_fields(s: Schemas) -> None:
    del s["TaskRequest"]["additionalProperties"]


def _change_bound(s: Schemas) -> None:
    s["TaskRequest"]["properties"]["max_tokens"]["minimum"] = 0


def _rename_ref(s: Schemas) -> None:
    s["ErrorEnvelope"]["properties"]["code"]["$ref"] = "#/components/schemas/Workload"


def _extra_property(s: Schemas) -> None:
    s["EndEvent"]["properties"]["reason"] = {"type": "string"}


def _drop_schema(s: Schemas) -> None:
    del s["MetricsEvent"]


MUTATIONS: dict[str, tuple[Callable[[Schemas], None], str]] = {
    "property removed": (_drop_property, "TaskRequest.properties.seed"),
    "type changed": (_change_type, "AdmissionResponse.properties.queue_position.type"),
    "nullability dropped": (_drop_nullability, "SessionInfo.properties.pool.nullable"),
    "nullability added": (_add_nullability, "TokenEvent.properties.t.nullable"),
    "required entry dropped": (_drop_required, "StartedEvent.required"),
    "enum value dropped": (_drop_enum_value, "ErrorCode.enum"),
    "array item $ref changed": (_change_item_ref, "PoolCapability.properties.workloads.items.ref"),
    "array item type changed": (_change_array_item_type, "TaskRequest.properties.inputs.items.type"),
    "unknown fields allowed": (_allow_unknown_fields, "TaskRequest.additionalProperties"),
    "bound changed": (_change_bound, "TaskRequest.properties.max_tokens.minimum"),
    "$ref renamed": (_rename_ref, "ErrorEnvelope.properties.code.ref"),
    "property added": (_extra_property, "EndEvent.properties.reason"),
    "schema removed": (_drop_schema, "MetricsEvent: served, but not in"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_schema_comparator_reports_drift(specs: dict[str, Json], mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    broken = copy.deepcopy(yaml_schemas(specs))
    mutate(Schemas(broken))
    problems = compare_schemas(component_schemas(), broken)
    assert problems, f"{mutation}: the comparator saw no difference"
    assert all(expected in p for p in problems), f"{mutation}: expected only reports about {expected}, got {problems}"


def test_schema_comparator_checks_every_file_that_defines_a_schema(specs: dict[str, Json]) -> None:
    schemas = copy.deepcopy(yaml_schemas(specs))
    schemas["control.yaml"]["ErrorEnvelope"]["properties"]["retriable"]["type"] = "string"
    problems = compare_schemas(component_schemas(), schemas)
    assert any(p.startswith("control.yaml:ErrorEnvelope.properties.retriable") for p in problems), problems


async def test_operation_and_response_comparators_report_drift(served: Json, specs: dict[str, Json]) -> None:
    assert compare_operations(served, specs) == []  # baseline

    planned = copy.deepcopy(specs)
    planned["data.yaml"]["paths"]["/v1/tasks/{task_id}/cancel"]["post"]["x-llorch-status"] = "planned"
    assert any("cancelTask" in p for p in compare_operations(served, planned))

    renamed = copy.deepcopy(specs)
    renamed["data.yaml"]["paths"]["/v1/sessions/{session_id}"]["get"]["operationId"] = "readSession"
    problems = compare_operations(served, renamed)
    assert any("getSession" in p for p in problems) and any("readSession" in p for p in problems)

    # An operation the YAML declares as implemented (no planned marker) but the server lacks.
    unserved = copy.deepcopy(specs)
    unserved["control.yaml"]["paths"]["/v1/not-served"] = {
        "get": {"operationId": "notServed", "responses": {"200": {"description": "ok"}}}
    }
    assert any("notServed" in p for p in compare_operations(served, unserved))

    no_429 = copy.deepcopy(specs)
    del no_429["data.yaml"]["paths"]["/v1/tasks"]["post"]["responses"]["429"]
    assert any("status 429" in p for p in compare_responses(served, no_429))

    wrong_body = copy.deepcopy(specs)
    ok = wrong_body["data.yaml"]["paths"]["/v1/sessions/{session_id}"]["get"]["responses"]["200"]
    ok["content"]["application/json"]["schema"]["$ref"] = "#/components/schemas/AdmissionResponse"
    assert any("JSON body served SessionInfo" in p for p in compare_responses(served, wrong_body))

    wrong_request = copy.deepcopy(specs)
    del wrong_request["data.yaml"]["paths"]["/v1/tasks"]["post"]["requestBody"]
    assert any("request body served TaskRequest" in p for p in compare_responses(served, wrong_request))
