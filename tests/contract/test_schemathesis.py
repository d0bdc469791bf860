"""Schema-driven tests (schemathesis) of the OpenAPI files against a running orchestratord.

Every operation in ``contracts/openapi/{data,control}.yaml`` gets generated requests (valid and
invalid) sent to a real orchestratord on 127.0.0.1. Checks: never a 5xx, and every answer's status,
content type, headers and body are the ones the contract declares. Bounded: a fixed number of
examples per operation, derandomized, so CI is reproducible.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llama_orch.bdd._server import EmbeddedOrchestratord
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "contract" / "schemathesis.yaml"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with EmbeddedOrchestratord(config=CONFIG) as server:
        yield server.base_url


def _schema(name: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_path(ROOT / "contracts" / "openapi" / name)


data = _schema("data.yaml")
control = _schema("control.yaml")
_SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@data.parametrize()
@_SETTINGS
def test_data_plane_contract(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)


# Drain and reload change the only pool for every later request: exercised in their own tests.
@control.exclude(operation_id=["drainPool", "reloadPool"]).parametrize()
@_SETTINGS
def test_control_plane_contract(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)


# -- the checks can fail ----------------------------------------------------------------------------------


@pytest.fixture
async def drifted_server() -> AsyncIterator[str]:
    """A server whose capabilities drifted from control.yaml: api_version a number, pools missing."""

    async def capabilities(request: web.Request) -> web.Response:
        return web.json_response({"api_version": 1}, headers={"X-Correlation-Id": "x"})

    app = web.Application()
    app.router.add_get("/v1/capabilities", capabilities)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_the_checks_catch_a_drifted_response(drifted_server: str) -> None:
    case = control["/v1/capabilities"]["GET"].Case()
    with pytest.raises(FailureGroup) as caught:
        await asyncio.to_thread(case.call_and_validate, base_url=drifted_server, checks=CHECKS, timeout=30)
    failures = [str(f) for f in caught.value.exceptions]
    assert len(failures) == 2 and all("Response violates schema" in f for f in failures), failures
    assert any('1 is not of type "string"' in f for f in failures), failures
