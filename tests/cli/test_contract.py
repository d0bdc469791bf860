"""``llama-orch contract verify``: the committed Pact against a live orchestratord on loopback.

A fresh orchestratord (EmbeddedOrchestratord, the configuration the provider tests use for
interactions without a state) passes every interaction it can be put in the state for; the rest
are skipped, named by their state. A tampered pact and a drifted server fail with the mismatch,
and an unreachable server or an unusable pact file exit 2. And its verdicts are the Pact reference
verifier's (pact-python's FFI), interaction by interaction, on the committed pact and on copies
changed in ways that must fail and ways that must not.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from llama_orch.bdd._server import EmbeddedOrchestratord
from llama_orch.cli import ExitCode
from llama_orch.cli._contract import API_STATES, PLAN_CONTENT, PLAN_TAGS, default_pact
from tests.cli.conftest import Cli
from tests.conftest import free_port, serving
from tests.contract import _pact as consumer
from tests.contract._provider_states import FAST
from tests.contract.test_provider_verify import drifted_provider

pytestmark = pytest.mark.subprocess

PACT = json.loads(consumer.PACT_FILE.read_text())


def _state(interaction: dict[str, Any]) -> str:
    return str((interaction.get("providerStates") or [{}])[0].get("name", ""))


RUNNABLE = sorted(i["description"] for i in PACT["interactions"] if not _state(i) or _state(i) in API_STATES)
SKIPPED = {i["description"]: _state(i) for i in PACT["interactions"] if _state(i) and _state(i) not in API_STATES}


@pytest.fixture
def orchestratord(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "orchestratord.yaml"
    config.write_text(yaml.safe_dump(FAST))
    with EmbeddedOrchestratord(config) as server:
        yield server.base_url


def _write(tmp_path: Path, pact: dict[str, Any]) -> Path:
    path = tmp_path / "pact.json"
    path.write_text(json.dumps(pact))
    return path


def _by_description(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["description"]: i for i in report["interactions"]}


def test_the_default_pact_is_the_committed_one() -> None:
    assert default_pact().resolve() == consumer.PACT_FILE.resolve()


def test_the_states_it_sets_up_are_the_consumers() -> None:
    states = {_state(i) for i in PACT["interactions"]}
    assert set(API_STATES) <= states
    assert set(API_STATES) == {consumer.TASK_FINISHED, consumer.SESSION_EXISTS, consumer.PLAN_STORED}
    assert (PLAN_CONTENT, PLAN_TAGS) == (consumer.PLAN_CONTENT, consumer.PLAN_TAGS)


def test_a_fresh_orchestratord_honours_the_pact(cli: Cli, orchestratord: str) -> None:
    result = cli(orchestratord, "contract", "verify", "--json")
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    report = result.json()
    assert (report["consumer"], report["provider"]) == (consumer.CONSUMER, consumer.PROVIDER)
    results = _by_description(report)
    assert sorted(d for d, r in results.items() if r["result"] == "passed") == RUNNABLE
    skipped = {d: r for d, r in results.items() if r["result"] == "skipped"}
    assert {d: r["provider_state"] for d, r in skipped.items()} == SKIPPED
    assert all(r["reason"] == f"needs provider state {r['provider_state']!r}" for r in skipped.values())
    assert (report["passed"], report["failed"], report["skipped"]) == (len(RUNNABLE), 0, len(SKIPPED))


def test_the_text_report_names_each_interaction(cli: Cli, orchestratord: str) -> None:
    result = cli(orchestratord, "contract", "verify")
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "PASS a request for the capabilities" in lines
    assert "SKIP a task submission while the queue is full  (skipped: needs provider state " \
           "'the queue of pool default is full')" in lines  # fmt: skip
    assert lines[-1] == f"{len(RUNNABLE)} passed, 0 failed, {len(SKIPPED)} skipped"


def test_a_tampered_pact_fails_with_the_mismatch(cli: Cli, orchestratord: str, tmp_path: Path) -> None:
    pact = copy.deepcopy(PACT)
    for interaction in pact["interactions"]:
        if interaction["description"] == "a task submission":
            # The consumer now expects a queue position of exactly 5, and a header nobody sends.
            del interaction["response"]["matchingRules"]["body"]["$.queue_position"]
            interaction["response"]["body"]["queue_position"] = 5
            interaction["response"]["headers"]["X-Tampered"] = "yes"
    result = cli(orchestratord, "contract", "verify", "--pact", str(_write(tmp_path, pact)), "--json")
    assert result.exit_code == ExitCode.FAILURE, result.stdout + result.stderr
    report = result.json()
    failed = {d: r for d, r in _by_description(report).items() if r["result"] == "failed"}
    assert list(failed) == ["a task submission"], failed
    assert failed["a task submission"]["mismatches"] == [
        "header X-Tampered: missing (expected 'yes')",
        "$.queue_position: expected 5, got 0",
    ]
    assert report["passed"] == len(RUNNABLE) - 1


@pytest.fixture
async def drifted_server() -> AsyncIterator[str]:
    """The drifted provider of the reference verifier's test (test_provider_verify.py): tokens before
    `started` in a stream, and an admission whose queue position is a string."""

    async def capabilities(request: web.Request) -> web.Response:
        return web.json_response({"api_version": "0.1.0"})

    app = drifted_provider()
    app.router.add_get("/v1/capabilities", capabilities)
    async with serving(app) as base:
        yield base


async def test_a_drifted_server_fails_where_the_reference_verifier_does(
    cli: Cli, drifted_server: str, tmp_path: Path
) -> None:
    import asyncio

    wanted = ("a task submission", "a request for the event stream of task t-1")
    pact = copy.deepcopy(PACT)
    pact["interactions"] = [i for i in pact["interactions"] if i["description"] in wanted]
    for interaction in pact["interactions"]:
        interaction.pop("providerStates", None)  # the stream of t-1 without setting it up
    path = _write(tmp_path, pact)
    # The CLI runs in a thread: the drifted server answers on this test's event loop.
    result = await asyncio.to_thread(cli, drifted_server, "contract", "verify", "--pact", str(path), "--json")
    assert result.exit_code == ExitCode.FAILURE, result.stdout + result.stderr
    results = _by_description(result.json())
    assert results["a task submission"]["mismatches"] == ['$.queue_position: expected an integer, got "0"']
    [stream_mismatch] = results["a request for the event stream of task t-1"]["mismatches"]
    assert stream_mismatch.startswith("$: expected a value matching /"), stream_mismatch


def test_an_unreachable_server_exits_2(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(url, "contract", "verify")
    assert result.exit_code == ExitCode.USAGE == 2
    assert f"cannot reach orchestratord at {url}" in result.stderr
    as_json = cli(url, "--json", "contract", "verify")
    assert as_json.exit_code == 2 and as_json.stdout == ""
    error = json.loads(as_json.stderr)["error"]
    assert error["exit_code"] == 2 and "cannot reach orchestratord" in error["message"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ('{"consumer": {"name": "x"}}', "has no 'interactions' list"),
        (
            '{"interactions": [{"description": "d", "request": {"method": "GET"}, "response": {"status": 200}}]}',
            "no request path",
        ),
        ('{"interactions": [], "metadata": {"pactSpecification": {"version": "4.0"}}}', "only v1-v3"),
    ],
)
def test_an_unusable_pact_file_exits_2(cli: Cli, tmp_path: Path, content: str | None, said: str) -> None:
    path = tmp_path / "pact.json"
    if content is not None:
        path.write_text(content)
    # Checked before the server is: no server is needed to be told the file is wrong.
    result = cli(f"http://127.0.0.1:{free_port()}", "contract", "verify", "--pact", str(path))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert said in result.stderr, result.stderr


# -- the same verdicts as the Pact reference verifier ------------------------------------------------------

# Interactions without a state that change nothing a second run would see (no catalog entry, no
# artifact): both verifiers replay them, pact after pact, against one server.
READ_ONLY = [
    "a cancel request for an unknown task",
    "a request for an unknown session",
    "a request for the capabilities",
    "a request for the event stream of an unknown task",
    "a request for the replica sets",
    "a task submission",
    "a task submission over its session budget",
    "a task submission pinned to an unknown pool",
    "a task submission with an unknown sampler profile",
]


def _interaction(pact: dict[str, Any], description: str) -> dict[str, Any]:
    return next(i for i in pact["interactions"] if i["description"] == description)


def _no_rule(response: dict[str, Any], path: str) -> None:
    del response["matchingRules"]["body"][path]


def _mutate(name: str, pact: dict[str, Any]) -> None:
    caps = _interaction(pact, "a request for the capabilities")["response"]
    sets = _interaction(pact, "a request for the replica sets")["response"]
    task = _interaction(pact, "a task submission")["response"]
    unknown = _interaction(pact, "a cancel request for an unknown task")["response"]
    if name == "as committed":
        return
    if name == "api_version regex changed":
        caps["matchingRules"]["body"]["$.api_version"]["matchers"][0]["regex"] = "^9\\."
    elif name == "a value under a type rule changed":
        sets["body"]["replicasets"][0]["engine"] = "vllm"
        sets["body"]["replicasets"][0]["replicas"][0]["slots_total"] = 64
    elif name == "a value without a rule changed":
        del sets["matchingRules"]["body"]["$.replicasets"]
        sets["body"]["replicasets"][0]["queue_capacity"] = 999
    elif name == "an exact integer":
        _no_rule(task, "$.queue_position")
        task["body"]["queue_position"] = 5
    elif name == "a type where a number is":
        task["body"]["backoff_ms"] = "0"
        task["matchingRules"]["body"]["$.backoff_ms"] = {"combine": "AND", "matchers": [{"match": "type"}]}
    elif name == "a message under a type rule":
        unknown["body"]["message"] = "something else entirely"
    elif name == "a missing key":
        unknown["body"]["extra_key"] = "x"
    elif name == "a header nobody sends":
        unknown["headers"]["X-Tampered"] = "yes"
    elif name == "another status":
        unknown["status"] = 410
    else:  # pragma: no cover
        raise AssertionError(name)


MUTATIONS = [
    "as committed",
    "api_version regex changed",
    "a value under a type rule changed",
    "a value without a rule changed",
    "an exact integer",
    "a type where a number is",
    "a message under a type rule",
    "a missing key",
    "a header nobody sends",
    "another status",
]


@pytest.fixture(scope="module")
def shared_orchestratord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = tmp_path_factory.mktemp("shared") / "orchestratord.yaml"
    config.write_text(yaml.safe_dump(FAST))
    with EmbeddedOrchestratord(config) as server:
        yield server.base_url


def _reference_verdicts(base_url: str, path: Path) -> dict[str, str]:
    os.environ.setdefault("PACT_DO_NOT_TRACK", "true")  # the FFI reports usage over the network otherwise
    from pact import Verifier

    verifier = Verifier(consumer.PROVIDER, host="127.0.0.1").add_transport(url=base_url).add_source(path)
    with contextlib.suppress(RuntimeError):  # raised on any failure; the results say which
        verifier.verify()
    results = verifier.results["interactionResults"]
    return {r["description"]: "passed" if r["result"] == "OK" else "failed" for r in results}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_verdicts_are_the_reference_verifiers(
    cli: Cli, shared_orchestratord: str, tmp_path: Path, mutation: str
) -> None:
    pact = copy.deepcopy(PACT)
    pact["interactions"] = [i for i in pact["interactions"] if i["description"] in READ_ONLY]
    _mutate(mutation, pact)
    path = _write(tmp_path, pact)
    reference = _reference_verdicts(shared_orchestratord, path)
    result = cli(shared_orchestratord, "contract", "verify", "--pact", str(path), "--json")
    ours = {d: r["result"] for d, r in _by_description(result.json()).items()}
    assert ours == reference, result.stdout
    assert sorted(ours) == sorted(READ_ONLY)
    failed = sorted(d for d, r in ours.items() if r == "failed")
    assert result.exit_code == (ExitCode.FAILURE if failed else ExitCode.OK)
    should_pass = mutation in ("as committed", "a value under a type rule changed", "a message under a type rule")
    assert (not failed) == should_pass, failed
