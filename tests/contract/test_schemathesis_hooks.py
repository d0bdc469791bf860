"""The hook check ``refusals_are_documented`` and the statuses schemathesis.toml widens.

``schemathesis.toml`` lets ``positive_data_acceptance`` accept, operation by operation, the 4xx
statuses a schema-valid request may still get (the operation's ``x-llorch-refusals``); the hook
then fails any refusal the YAML does not list. Both halves are checked here: the TOML says exactly
what the YAML says, and the check fails an undocumented refusal (on its own and inside a real
schemathesis validation against a drifted server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from aiohttp import web
from hypothesis import HealthCheck
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from tests.conftest import serving
from tests.contract.schemathesis_hooks import REFUSALS, refusal_problem

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "contracts" / "openapi"
SPEC_FILES = ("data.yaml", "control.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace", "query")


def _spec(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((SPEC_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op for item in doc["paths"].values() for method, op in item.items() if method in HTTP_METHODS
    }


def _default_statuses() -> set[str]:
    return set(SchemathesisConfig().projects.get_default().checks.positive_data_acceptance.expected_statuses)


def _toml_statuses() -> dict[str, dict[str, set[str]]]:
    """{project title: {operationId: expected statuses}} from schemathesis.toml."""
    config = tomllib.loads((ROOT / "schemathesis.toml").read_text(encoding="utf-8"))
    found: dict[str, dict[str, set[str]]] = {}
    for project in config.get("project", []):
        ops = found.setdefault(project["title"], {})
        for entry in project.get("operations", []):
            statuses = entry["checks"]["positive_data_acceptance"]["expected-statuses"]
            ops[entry["include-operation-id"]] = set(statuses)
    return found


@pytest.mark.parametrize("name", SPEC_FILES)
def test_schemathesis_toml_widens_exactly_the_documented_statuses(name: str) -> None:
    doc = _spec(name)
    defaults = _default_statuses()
    wanted: dict[str, set[str]] = {}
    for op_id, op in _operations(doc).items():
        statuses = {str(refusal["status"]) for refusal in op.get(REFUSALS) or ()}
        if statuses - defaults:
            wanted[op_id] = defaults | statuses
    assert _toml_statuses().get(doc["info"]["title"], {}) == wanted


@pytest.mark.parametrize("name", SPEC_FILES)
def test_every_refusal_names_4xx_codes_and_why(name: str) -> None:
    for op_id, op in _operations(_spec(name)).items():
        for refusal in op.get(REFUSALS) or ():
            assert 400 <= refusal["status"] < 500, (op_id, refusal)
            assert refusal["codes"] and all(isinstance(c, str) for c in refusal["codes"]), (op_id, refusal)
            assert refusal.get("why"), (op_id, refusal)
            assert set(refusal) <= {"status", "codes", "locs", "why"}, (op_id, refusal)


def _envelope(code: str, *locs: str) -> bytes:
    body: dict[str, Any] = {"code": code, "message": "m", "retriable": False}
    if locs:
        body["details"] = {"errors": [{"loc": loc, "msg": "bad", "type": "value_error"} for loc in locs]}
    return json.dumps(body).encode()


CREATE_TASK = _operations(_spec("data.yaml"))["createTask"]
REGISTER = _operations(_spec("control.yaml"))["registerReplicas"]


def test_a_documented_refusal_passes() -> None:
    assert refusal_problem(CREATE_TASK, 400, _envelope("UNKNOWN_MODEL")) is None
    assert refusal_problem(CREATE_TASK, 409, _envelope("TASK_EXISTS")) is None
    assert refusal_problem(REGISTER, 400, _envelope("INVALID_PARAMS", "replicas")) is None


def test_what_is_not_a_refusal_passes() -> None:
    assert refusal_problem(CREATE_TASK, 202, b"{}") is None
    assert refusal_problem(CREATE_TASK, 401, _envelope("UNAUTHENTICATED")) is None
    assert refusal_problem(CREATE_TASK, 503, _envelope("INTERNAL")) is None  # not_a_server_error's business


@pytest.mark.parametrize(
    ("operation", "status", "body", "said"),
    [
        (CREATE_TASK, 400, _envelope("INVALID_PARAMS", "prompt"), "400 INVALID_PARAMS at prompt"),
        (CREATE_TASK, 409, _envelope("CONFLICT"), "409 CONFLICT"),
        (CREATE_TASK, 418, _envelope("UNKNOWN_MODEL"), "418 UNKNOWN_MODEL"),
        (REGISTER, 400, _envelope("INVALID_PARAMS"), "400 INVALID_PARAMS,"),  # no locs: not the listed one
        (REGISTER, 400, _envelope("INVALID_PARAMS", "replicas", "host"), "at host, replicas"),
        (CREATE_TASK, 400, b"not json", "400 without an error envelope"),
    ],
)
def test_an_undocumented_refusal_fails(operation: dict[str, Any], status: int, body: bytes, said: str) -> None:
    problem = refusal_problem(operation, status, body)
    assert problem is not None and said in problem, problem


@pytest.fixture
async def refusing_server() -> AsyncIterator[str]:
    """A server that refuses every task with a rule data.yaml does not state: 400 at ``prompt``."""

    async def create_task(request: web.Request) -> web.Response:
        body = {"code": "INVALID_PARAMS", "message": "prompt: too clever", "retriable": False,
                "details": {"errors": [{"loc": "prompt", "msg": "too clever", "type": "value_error"}]},
                "correlation_id": "x"}  # fmt: skip
        return web.json_response(body, status=400, headers={"X-Correlation-Id": "x"})

    app = web.Application()
    app.router.add_post("/v1/tasks", create_task)
    async with serving(app) as base:
        yield base


async def test_schemathesis_fails_an_undocumented_refusal_of_valid_data(refusing_server: str) -> None:
    with contextlib.chdir(ROOT):  # loads the hook, whose path is relative to the repository root
        config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    schema = schemathesis.openapi.from_path(SPEC_DIR / "data.yaml", config=config)
    strategy = schema["/v1/tasks"]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE)
    settings = hypothesis.settings(derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    case = hypothesis.find(strategy, lambda c: True, settings=settings)
    with pytest.raises(FailureGroup) as caught:
        await asyncio.to_thread(case.call_and_validate, base_url=refusing_server, timeout=30)
    failures = [str(f) for f in caught.value.exceptions]
    assert any("refusals_are_documented" in f and "400 INVALID_PARAMS at prompt" in f for f in failures), failures
