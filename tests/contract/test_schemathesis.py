"""Schema-driven tests (schemathesis) of the OpenAPI files against a running orchestratord.

Every operation in ``contracts/openapi/{data,control}.yaml`` gets generated requests (valid and
invalid) sent to a real orchestratord on 127.0.0.1 (tests/contract/schemathesis.yaml: the mock
pool, nothing reachable off loopback), and every answer goes through **every** check schemathesis
has, as ``st run --checks all`` resolves them (``schemathesis.checks.CHECKS``): never a 5xx;
status, content type, headers and body as declared; invalid data refused and valid data accepted
(or refused only as the operation's ``x-llorch-refusals`` say: the project's hook check
``refusals_are_documented``); missing required headers, unsupported methods and ``Allow``; resources
gone after a delete and there after a create; auth never ignored. The configuration is the one
``st run`` reads (``schemathesis.toml``), with its hooks and per-operation statuses.

Phases: examples, coverage and fuzzing through ``parametrize()``, then the stateful phase: the
state machine schemathesis builds from the YAML's links (create task → stream → cancel, create
artifact → get → lineage, catalog create → verify → state, ...), each file on a fresh server.

Bounded and reproducible: a fixed number of fuzzed examples per operation, a fixed number of
stateful scenarios and steps, all derandomized. The totals are printed at the end of the run
(tests/contract/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import APIStateMachine, StepInput, StepOutput

from llama_orch.bdd._server import EmbeddedOrchestratord
from llama_orch.server.config import load_config
from tests.client._server import threaded_server
from tests.conftest import serving
from tests.contract._tally import TALLY

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "contract" / "schemathesis.yaml"
SCHEMATHESIS_TOML = ROOT / "schemathesis.toml"
SPEC_DIR = ROOT / "contracts" / "openapi"
PHASES = ["examples", "coverage", "fuzzing", "stateful"]
SEED = 20261203
FUZZ_EXAMPLES = 15  # per operation, on top of its examples and its coverage cases
STATEFUL_SCENARIOS = 20  # per file
STATEFUL_STEPS = 8  # at most, per scenario
TIMEOUT_S = 30
# Drain and reload change the only pool for every later request: on a server of their own.
POOL_LIFECYCLE = ["drainPool", "reloadPool"]

pytestmark = pytest.mark.subprocess


def load_schema(name: str) -> schemathesis.BaseSchema:
    """``contracts/openapi/<name>`` configured as ``st run --checks all --phases <all four>`` from
    the repository root would configure it (loading schemathesis.toml loads its hooks)."""
    with contextlib.chdir(ROOT):  # its `hooks` path is relative to the repository root, as for `st run`
        config = SchemathesisConfig.from_path(SCHEMATHESIS_TOML)
    config.update(seed=SEED, max_failures=None)
    config.projects.override.checks.update(included_check_names=["all"])
    config.projects.override.phases.update(phases=PHASES)
    config.projects.override.generation.update(max_examples=FUZZ_EXAMPLES, deterministic=True)
    return schemathesis.openapi.from_path(SPEC_DIR / name, config=config)


def all_check_names() -> list[str]:
    """What ``--checks all`` means: every registered check (built-ins and the hook's)."""
    load_all_checks()
    return [check.__name__ for check in CHECKS.get_all() if not is_check_class(check)]


data = load_schema("data.yaml")
control = load_schema("control.yaml")
_SETTINGS = hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _serve() -> Iterator[str]:
    with EmbeddedOrchestratord(config=CONFIG) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def pool_lifecycle_url() -> Iterator[str]:
    yield from _serve()


def _validate(schema: str, case: schemathesis.Case, base_url: str) -> None:
    TALLY.case(schema, case.operation.label)
    # No `checks=`: every check the configuration enables, which is all of them.
    case.call_and_validate(base_url=base_url, timeout=TIMEOUT_S)


# -- the checks that run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [data, control], ids=["data", "control"])
def test_every_check_is_enabled_for_every_operation(schema: schemathesis.BaseSchema) -> None:
    names = all_check_names()
    assert {"refusals_are_documented", "positive_data_acceptance", "negative_data_rejection"} <= set(names)
    assert {"use_after_free", "ensure_resource_availability", "allow_header_conformance"} <= set(names)
    for result in schema.get_all_operations():
        operation = result.ok()
        for phase in PHASES:
            config = schema.config.checks_config_for(operation=operation, phase=phase)
            off = [name for name in names if not config.get_by_name(name=name).enabled]
            assert not off, f"{operation.label} ({phase}): {off} disabled"
        assert all(getattr(schema.config.phases_for(operation=operation), phase).enabled for phase in PHASES), (
            operation.label
        )


# -- examples, coverage, fuzzing ----------------------------------------------------------------------------


@data.parametrize()
@_SETTINGS
def test_data_plane_contract(case: schemathesis.Case, base_url: str) -> None:
    _validate("data.yaml", case, base_url)


@control.exclude(operation_id=POOL_LIFECYCLE).parametrize()
@_SETTINGS
def test_control_plane_contract(case: schemathesis.Case, base_url: str) -> None:
    _validate("control.yaml", case, base_url)


@control.include(operation_id=POOL_LIFECYCLE).parametrize()
@_SETTINGS
def test_pool_lifecycle_contract(case: schemathesis.Case, pool_lifecycle_url: str) -> None:
    _validate("control.yaml", case, pool_lifecycle_url)


# -- stateful ----------------------------------------------------------------------------------------------


def _counted_state_machine(schema: schemathesis.BaseSchema, name: str) -> type[APIStateMachine]:
    """The YAML's links as a state machine; each scenario gets a server of its own (in this process,
    on loopback), so that what one scenario created (a catalog entry, an artifact, a registration)
    never changes the answers another gets to the same requests: hypothesis replays shared prefixes
    of its choices and needs the same answers to them."""
    machine = schema.as_state_machine()
    config = load_config(CONFIG)

    class Counted(machine):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            TALLY.stateful_scenarios += 1
            self._server = threaded_server(config.model_copy(deep=True))
            self._base_url = self._server.__enter__()
            super().setup()

        def teardown(self) -> None:
            try:
                super().teardown()
            finally:
                self._server.__exit__(None, None, None)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": self._base_url, "timeout": TIMEOUT_S}

        def step(self, input: StepInput) -> StepOutput:
            TALLY.step(name, input.case.operation.label)
            return super().step(input)

    return Counted


@pytest.mark.parametrize("name", ["data.yaml", "control.yaml"])
def test_stateful_contract(name: str) -> None:
    schema = {"data.yaml": data, "control.yaml": control}[name]
    machine = _counted_state_machine(schema, name)
    steps_before = TALLY.stateful_steps
    machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    assert TALLY.stateful_steps > steps_before, "the state machine sent nothing"


# -- the checks can fail ----------------------------------------------------------------------------------


@pytest.fixture
async def drifted_server() -> AsyncIterator[str]:
    """A server whose capabilities drifted from control.yaml: api_version a number, pools missing."""

    async def capabilities(request: web.Request) -> web.Response:
        return web.json_response({"api_version": 1}, headers={"X-Correlation-Id": "x"})

    app = web.Application()
    app.router.add_get("/v1/capabilities", capabilities)
    async with serving(app) as base:
        yield base


async def test_the_checks_catch_a_drifted_response(drifted_server: str) -> None:
    case = control["/v1/capabilities"]["GET"].Case()
    with pytest.raises(FailureGroup) as caught:
        await asyncio.to_thread(case.call_and_validate, base_url=drifted_server, timeout=TIMEOUT_S)
    failures = [str(f) for f in caught.value.exceptions]
    assert failures and all("Response violates schema" in f for f in failures), failures
    assert any('1 is not of type "string"' in f for f in failures), failures
