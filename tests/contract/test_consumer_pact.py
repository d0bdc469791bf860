"""Consumer side of the Pact (OC-CLI-2603): what ``llama-orch-cli`` expects of ``orchestratord``.

Each test states one interaction on a Pact mock server (pact-python over the Pact reference
implementation's FFI), drives the real SDK (:class:`llama_orch.client.Client`) against it and checks
what the SDK makes of the answer. The mock server fails the test when the SDK's request differs
from the interaction (method, path, headers, body) or when an interaction was never exercised.

Responses use matchers (type, integer, regex) wherever a value is the server's to choose, and
literal values where the value *is* the contract (error codes, ``retriable``, session ids).

When every test here has passed, their interactions are written to
``contracts/pacts/llama-orch-cli-orchestratord.json`` (normalised, so an unchanged contract gives
an unchanged file); ``tests/contract/test_provider_verify.py`` verifies that file against a real
orchestratord. Under CI a committed file that differs from the generated one fails the run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pact import Pact, match
from pact.interaction import HttpInteraction

from llama_orch.client import (
    AdmissionRejectError,
    BudgetExceededError,
    Client,
    DeadlineUnmetError,
    InvalidParamsError,
    NotFoundError,
    PayloadTooLargeError,
    PoolDrainingError,
    RetryPolicy,
    TaskExistsError,
    UnknownPoolError,
    last_response,
)
from llama_orch_api import CatalogFileSpec, CatalogModelCreate, EndEvent, StartedEvent, TokenEvent
from tests.contract._pact import (
    CONSUMER,
    MODEL_ON_DISK,
    PACT_FILE,
    PLAN_CONTENT,
    PLAN_ID,
    PLAN_STORED,
    PLAN_TAGS,
    POOL_BUSY,
    POOL_DRAINING,
    PROVIDER,
    QUEUE_FULL,
    SESSION_EXISTS,
    SMALL_BODIES,
    TASK_FINISHED,
    TASK_RUNNING,
)

CID = "cli-run-42.step-3"
CID_RE = r"^[A-Za-z0-9._:\-]{1,128}$"
ID_RE = r"^[A-Za-z0-9._:\-]+$"
TIMESTAMP_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
SHA256_ID_RE = r"^sha256:[0-9a-f]{64}$"
POOL_STATE_RE = r"^(starting|ready|draining|drained|reloading|unready|failed|stopped)$"

PLAN = {"kind": "plan", "content": PLAN_CONTENT, "tags": PLAN_TAGS}

# A finished task's stream as the server writes it (ids count from 1; data is one JSON line).
STREAM_EXAMPLE = (
    'id: 1\nevent: metrics\ndata: {"queue_position":0,"predicted_start_ms":0,"queue_depth":1}\n\n'
    'id: 2\nevent: started\ndata: {"task_id":"t-1","pool":"default","replica":"default/r0",'
    '"queue_position":0,"predicted_start_ms":0,"waited_ms":0}\n\n'
    'id: 3\nevent: metrics\ndata: {"queue_depth":0,"kv_warmth":false,"tokens_out":0}\n\n'
    'id: 4\nevent: token\ndata: {"t":" contract","i":0}\n\n'
    'id: 5\nevent: token\ndata: {"t":" to","i":1}\n\n'
    'id: 6\nevent: token\ndata: {"t":" if","i":2}\n\n'
    'id: 7\nevent: end\ndata: {"tokens_out":3,"decode_time_ms":1,"finish_reason":"length"}\n\n'
)


def _frame(event: str) -> str:
    return rf"id: \d+\nevent: {event}\ndata: \{{[^\n]*\}}\n\n"


_SIDE = rf"(?:{_frame('metrics')}|:[^\n]*\n\n)*"  # metrics frames and heartbeat comments, anywhere
# The whole body (\A…\z: the Pact regex engine treats ^ and $ as line anchors): started before
# any token, at least one token, and `end` as the very last frame.
STREAM_RE = rf"\A{_SIDE}{_frame('started')}{_SIDE}(?:{_frame('token')}{_SIDE})+{_frame('end')}\z"


def cid() -> Any:
    return match.regex(CID, regex=CID_RE)


def envelope(code: str, message: str, *, retriable: bool = False, **fields: Any) -> dict[str, Any]:
    """An error envelope: the code and ``retriable`` are the contract, the message is free text."""
    return {"code": code, "message": match.str(message), "retriable": retriable, **fields, "correlation_id": cid()}


def backoff_headers(retry_after_s: int, backoff_ms: int) -> dict[str, Any]:
    return {
        "Retry-After": match.regex(str(retry_after_s), regex=r"^[1-9][0-9]*$"),
        "X-Backoff-Ms": match.regex(str(backoff_ms), regex=r"^[0-9]+$"),
    }


# -- the Pact, one per test, merged into one file ------------------------------------------------------

_PASSED: set[str] = set()


class Contract:
    """One test's Pact: its interactions, and a real SDK client pointed at its mock server."""

    def __init__(self) -> None:
        self.pact = Pact(CONSUMER, PROVIDER).with_specification("V3")
        self.done = False

    def interaction(
        self,
        description: str,
        method: str,
        path: str,
        *,
        state: str | None = None,
        body: Any = None,
        accept: str = "application/json",
    ) -> HttpInteraction:
        """The request part, with the headers the SDK always sends; returns the interaction."""
        interaction = self.pact.upon_receiving(description)
        if state is not None:
            interaction.given(state)
        interaction.with_request(method, path)
        interaction.with_header("Accept", accept)
        interaction.with_header("X-Correlation-Id", cid())
        if body is not None:
            interaction.with_body(body, content_type="application/json")
        return interaction

    def responds(
        self,
        interaction: HttpInteraction,
        status: int,
        body: Any = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        interaction.will_respond_with(status)
        interaction.with_header("X-Correlation-Id", cid())
        for name, value in (headers or {}).items():
            interaction.with_header(name, value)
        if body is not None:
            interaction.with_body(body, content_type="application/json")

    @contextmanager
    def client(self) -> Iterator[Client]:
        """The SDK against the mock server: one attempt per call (no retries), no limiter, no
        version probe, so that each call is exactly the interaction stated."""
        with (
            self.pact.serve(addr="127.0.0.1") as server,
            Client(
                str(server.url),
                check_api_version=False,
                retry=RetryPolicy(max_attempts=1),
                limiter=None,
                correlation_id=CID,
                stream_reconnects=0,
            ) as client,
        ):
            yield client
        self.done = True


@pytest.fixture(scope="module")
def pact_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("pacts")
    yield directory
    every_test = {name for name in vars(request.module) if name.startswith("test_")}
    if every_test == _PASSED:
        _publish(directory / PACT_FILE.name)


@pytest.fixture
def contract(request: pytest.FixtureRequest, pact_dir: Path) -> Iterator[Contract]:
    c = Contract()
    yield c
    if c.done:
        c.pact.write_file(pact_dir)
        _PASSED.add(request.node.name)


def _publish(generated: Path) -> None:
    """Write the complete pact to contracts/pacts, normalised; under CI a stale committed file fails."""
    pact = json.loads(generated.read_text())
    pact["interactions"].sort(key=lambda i: (i["description"], json.dumps(i.get("providerStates"))))
    text = json.dumps(pact, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    old = PACT_FILE.read_text() if PACT_FILE.exists() else None
    if old == text:
        return
    PACT_FILE.parent.mkdir(parents=True, exist_ok=True)
    PACT_FILE.write_text(text)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise AssertionError(
            f"{PACT_FILE.relative_to(PACT_FILE.parents[2])} was stale; it has been regenerated: commit it"
        )
    print(f"\nwrote {PACT_FILE}", file=sys.stderr)


# -- data plane: admission ------------------------------------------------------------------------------


def test_enqueue_accepted(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission", "POST", "/v1/tasks", body={"prompt": "hello", "max_tokens": 4, "seed": 7}
    )
    contract.responds(
        i,
        202,
        {
            "task_id": match.regex("9f3c2a1b0d4e4f5a8b6c7d8e9f0a1b2c", regex=ID_RE),
            "pool": match.str("default"),
            "queue_position": match.int(0, min=0),
            "predicted_start_ms": match.int(0, min=0),
            "backoff_ms": match.int(0, min=0),
            "stream_url": match.regex(
                "/v1/tasks/9f3c2a1b0d4e4f5a8b6c7d8e9f0a1b2c/stream", regex=r"^/v1/tasks/[A-Za-z0-9._:\-]+/stream$"
            ),
        },
        headers={
            "Location": match.regex(
                "/v1/tasks/9f3c2a1b0d4e4f5a8b6c7d8e9f0a1b2c/stream", regex=r"^/v1/tasks/[A-Za-z0-9._:\-]+/stream$"
            ),
            "X-Backoff-Ms": match.regex("0", regex=r"^[0-9]+$"),
        },
    )
    with contract.client() as client:
        admission = client.create_task(prompt="hello", max_tokens=4, seed=7)
    assert admission.task_id == "9f3c2a1b0d4e4f5a8b6c7d8e9f0a1b2c"
    assert admission.stream_url == f"/v1/tasks/{admission.task_id}/stream"
    assert (admission.pool, admission.queue_position, admission.backoff_ms) == ("default", 0, 0)


def test_queue_full_is_429_with_backoff_advice(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission while the queue is full",
        "POST",
        "/v1/tasks",
        state=QUEUE_FULL,
        body={"prompt": "one more", "max_tokens": 8, "priority": "batch"},
    )
    contract.responds(
        i,
        429,
        envelope(
            "ADMISSION_REJECT",
            "pool 'default' queue is full (2 tasks, policy reject)",
            retriable=True,
            retry_after_ms=match.int(1500, min=0),
            policy_label=match.regex("queue-full:reject", regex=r"^queue-full:(reject|drop-lru)$"),
        ),
        headers=backoff_headers(2, 1500),
    )
    with contract.client() as client, pytest.raises(AdmissionRejectError) as caught:
        client.create_task(prompt="one more", max_tokens=8, priority="batch")
    error = caught.value
    assert (error.status, error.retriable, error.retry_after_ms) == (429, True, 1500)
    assert error.envelope.policy_label == "queue-full:reject"
    assert error.correlation_id == CID


def test_invalid_params_is_400(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission with an unknown sampler profile",
        "POST",
        "/v1/tasks",
        body={"sampler_profile_version": "llorch/sampler@9", "prompt": "hello"},
    )
    contract.responds(
        i,
        400,
        envelope(
            "INVALID_PARAMS",
            "unknown sampler profile 'llorch/sampler@9'",
            details={"known_profiles": match.each_like("llorch/sampler@1")},
        ),
    )
    with contract.client() as client, pytest.raises(InvalidParamsError) as caught:
        client.create_task(prompt="hello", sampler_profile_version="llorch/sampler@9")
    assert caught.value.status == 400 and not caught.value.retriable
    assert caught.value.envelope.details == {"known_profiles": ["llorch/sampler@1"]}


def test_unknown_pool_is_400(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission pinned to an unknown pool", "POST", "/v1/tasks", body={"pool": "nope", "prompt": "hello"}
    )
    contract.responds(
        i,
        400,
        envelope("UNKNOWN_POOL", "no pool named 'nope'", details={"known_pools": match.each_like("default")}),
    )
    with contract.client() as client, pytest.raises(UnknownPoolError) as caught:
        client.create_task(prompt="hello", pool="nope")
    assert caught.value.status == 400


def test_task_id_reuse_is_409(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission reusing task id t-1",
        "POST",
        "/v1/tasks",
        state=TASK_FINISHED,
        body={"task_id": "t-1", "prompt": "hello"},
    )
    contract.responds(i, 409, envelope("TASK_EXISTS", "task 't-1' already exists"))
    with contract.client() as client, pytest.raises(TaskExistsError) as caught:
        client.create_task(task_id="t-1", prompt="hello")
    assert caught.value.status == 409


def test_body_over_the_limit_is_413(contract: Contract) -> None:
    prompt = "x" * 2048
    i = contract.interaction(
        "a task submission larger than the body limit",
        "POST",
        "/v1/tasks",
        state=SMALL_BODIES,
        body={"prompt": prompt},
    )
    contract.responds(i, 413, envelope("PAYLOAD_TOO_LARGE", "request body too large (limit 1024 bytes)"))
    with contract.client() as client, pytest.raises(PayloadTooLargeError) as caught:
        client.create_task(prompt=prompt)
    assert caught.value.status == 413


def test_over_budget_is_402(contract: Contract) -> None:
    body = {"session_id": "s-budget", "prompt": "plan the migration", "max_tokens": 64, "budget": {"tokens": 16}}
    i = contract.interaction("a task submission over its session budget", "POST", "/v1/tasks", body=body)
    contract.responds(
        i,
        402,
        envelope(
            "BUDGET_EXCEEDED",
            "max_tokens 64 exceeds the session's remaining token budget 16",
            details={"dimension": "tokens", "budget": match.like({"tokens_limit": 16, "tokens_remaining": 16})},
        ),
    )
    with contract.client() as client, pytest.raises(BudgetExceededError) as caught:
        client.create_task(session_id="s-budget", prompt="plan the migration", max_tokens=64, budget={"tokens": 16})
    assert caught.value.status == 402
    assert caught.value.envelope.details is not None and caught.value.envelope.details["dimension"] == "tokens"


def test_draining_pool_is_503(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission while pool default is draining",
        "POST",
        "/v1/tasks",
        state=POOL_DRAINING,
        body={"prompt": "hello"},
    )
    contract.responds(
        i,
        503,
        envelope(
            "POOL_DRAINING",
            "no matching pool is admitting tasks now (default: drained)",
            retriable=True,
            retry_after_ms=match.int(1000, min=0),
            details={"pools": {"default": match.regex("drained", regex=r"^(draining|drained)$")}},
        ),
        headers=backoff_headers(1, 1000),
    )
    with contract.client() as client, pytest.raises(PoolDrainingError) as caught:
        client.create_task(prompt="hello")
    assert (caught.value.status, caught.value.retriable, caught.value.retry_after_ms) == (503, True, 1000)


def test_unmeetable_deadline_is_429(contract: Contract) -> None:
    i = contract.interaction(
        "a task submission whose deadline cannot be met",
        "POST",
        "/v1/tasks",
        state=POOL_BUSY,
        body={"prompt": "hello", "max_tokens": 4, "deadline_ms": 1},
    )
    contract.responds(
        i,
        429,
        envelope(
            "DEADLINE_UNMET",
            "predicted start in 1840 ms misses the deadline of 1 ms",
            retriable=True,
            retry_after_ms=match.int(1839, min=0),
            policy_label="deadline-unmet",
            details={"predicted_start_ms": match.int(1840, min=0), "pool": match.str("default")},
        ),
        headers=backoff_headers(2, 1839),
    )
    with contract.client() as client, pytest.raises(DeadlineUnmetError) as caught:
        client.create_task(prompt="hello", max_tokens=4, deadline_ms=1)
    assert (caught.value.status, caught.value.retriable, caught.value.retry_after_ms) == (429, True, 1839)


# -- data plane: streams and cancellation -----------------------------------------------------------------


def test_stream_is_sse_started_tokens_end(contract: Contract) -> None:
    i = contract.interaction(
        "a request for the event stream of task t-1",
        "GET",
        "/v1/tasks/t-1/stream",
        state=TASK_FINISHED,
        accept="text/event-stream",
    )
    contract.responds(
        i,
        200,
        headers={
            "Content-Type": match.regex("text/event-stream", regex=r"^text/event-stream(;.*)?$"),
            "Cache-Control": "no-cache",
        },
    )
    i.with_body(STREAM_EXAMPLE, content_type="text/event-stream")
    i.with_matching_rules({"body": {"$": {"matchers": [{"match": "regex", "regex": STREAM_RE}]}}})
    with contract.client() as client:
        events = list(client.stream("t-1"))
    names = [e.event for e in events]
    assert names == ["metrics", "started", "metrics", "token", "token", "token", "end"]
    assert [e.id for e in events] == list(range(1, 8))
    started = events[1].data
    assert isinstance(started, StartedEvent) and started.task_id == "t-1"
    tokens = [e.data for e in events if isinstance(e.data, TokenEvent)]
    assert [t.i for t in tokens] == [0, 1, 2]
    assert isinstance(events[-1].data, EndEvent) and events[-1].data.tokens_out == len(tokens)


def test_stream_of_unknown_task_is_404(contract: Contract) -> None:
    i = contract.interaction(
        "a request for the event stream of an unknown task", "GET", "/v1/tasks/t-unknown/stream",
        accept="text/event-stream",
    )  # fmt: skip
    contract.responds(i, 404, envelope("NOT_FOUND", "no task 't-unknown' (unknown, or its events expired)"))
    with contract.client() as client, pytest.raises(NotFoundError) as caught:
        list(client.stream("t-unknown"))
    assert caught.value.status == 404


def test_cancel_is_204(contract: Contract) -> None:
    i = contract.interaction("a cancel request for task t-2", "POST", "/v1/tasks/t-2/cancel", state=TASK_RUNNING)
    contract.responds(i, 204)
    with contract.client() as client:
        assert client.cancel("t-2") is None
    assert last_response() is not None and last_response().status == 204  # type: ignore[union-attr]


def test_cancel_of_unknown_task_is_404(contract: Contract) -> None:
    i = contract.interaction("a cancel request for an unknown task", "POST", "/v1/tasks/t-unknown/cancel")
    contract.responds(i, 404, envelope("NOT_FOUND", "no task 't-unknown' (unknown, or its events expired)"))
    with contract.client() as client, pytest.raises(NotFoundError):
        client.cancel("t-unknown")


# -- sessions ---------------------------------------------------------------------------------------------------


def test_get_session(contract: Contract) -> None:
    i = contract.interaction("a request for session s-1", "GET", "/v1/sessions/s-1", state=SESSION_EXISTS)
    contract.responds(
        i,
        200,
        {
            "session_id": "s-1",
            "ttl_ms_remaining": match.int(599_000, min=0),
            "turns": match.int(1, min=0),
            "kv_warmth": match.bool(True),
            "pool": match.str("default"),
            "replica": match.str("default/r0"),
            "tokens_used": match.int(3, min=0),
        },
    )
    with contract.client() as client:
        session = client.get_session("s-1")
    assert (session.session_id, session.turns, session.pool) == ("s-1", 1, "default")


def test_delete_session(contract: Contract) -> None:
    i = contract.interaction("a request to delete session s-1", "DELETE", "/v1/sessions/s-1", state=SESSION_EXISTS)
    contract.responds(i, 204)
    with contract.client() as client:
        assert client.delete_session("s-1") is None


def test_unknown_session_is_404(contract: Contract) -> None:
    i = contract.interaction("a request for an unknown session", "GET", "/v1/sessions/s-unknown")
    contract.responds(i, 404, envelope("NOT_FOUND", "no session 's-unknown' (unknown or expired)"))
    with contract.client() as client, pytest.raises(NotFoundError) as caught:
        client.get_session("s-unknown")
    assert caught.value.status == 404


# -- control plane ---------------------------------------------------------------------------------------------


def test_capabilities(contract: Contract) -> None:
    i = contract.interaction("a request for the capabilities", "GET", "/v1/capabilities")
    pool = {
        "id": "default",
        "engine": "mock",
        "engine_version": "mock-1",
        "model_ref": "mock:tiny",
        "ctx_max": 8192,
        "max_tokens": 2048,
        "slots": 2,
        "replicas": 1,
        "workloads": ["completion"],
        "determinism": ["best_effort"],
        "queue_capacity": 256,
        "queue_policy": match.regex("reject", regex=r"^(reject|drop-lru)$"),
        "max_tokens_out": 2048,
        "concurrency": 2,
        "price_per_token": match.number(0.0),
        "rate_limits": {"queue_capacity": 256, "queue_policy": "reject", "max_body_bytes": 1_048_576},
        "features": {"determinism": ["best_effort"], "cancel": True, "sse_resume": True, "budgets": True},
    }
    contract.responds(
        i,
        200,
        # The SDK accepts any 0.1.x server (SUPPORTED_API_VERSIONS).
        {"api_version": match.regex("0.1.0", regex=r"^0\.1\.[0-9]+$"), "pools": match.each_like(pool, min=1)},
    )
    with contract.client() as client:
        caps = client.capabilities()
    assert caps.api_version == "0.1.0" and client.server_api_version == "0.1.0"
    assert [(p.id, p.concurrency, p.queue_capacity) for p in caps.pools] == [("default", 2, 256)]


def test_replicasets(contract: Contract) -> None:
    i = contract.interaction("a request for the replica sets", "GET", "/v1/replicasets")
    replica = {
        "id": "default/r0",
        "state": match.regex("ready", regex=POOL_STATE_RE),
        "model_ref": "mock:tiny",
        "slots_total": 2,
        "slots_free": 2,
    }
    replicaset = {
        "pool": "default",
        "engine": "mock",
        "engine_version": "mock-1",
        "model_ref": "mock:tiny",
        "state": match.regex("ready", regex=POOL_STATE_RE),
        "load": match.number(0.0),
        "slots_total": 2,
        "slots_free": 2,
        "queue_depth": 0,
        "queue_capacity": 256,
        "replicas": match.each_like(replica, min=1),
        "slo": {"window_s": match.number(300.0), "samples": match.int(0, min=0)},
    }
    contract.responds(i, 200, {"replicasets": match.each_like(replicaset, min=1)})
    with contract.client() as client:
        sets = client.replicasets()
    assert [(s.pool, s.state, len(s.replicas)) for s in sets.replicasets] == [("default", "ready", 1)]


def test_artifact_create(contract: Contract) -> None:
    i = contract.interaction("an artifact submission", "POST", "/v1/artifacts", body=PLAN)
    contract.responds(
        i,
        201,
        {
            "id": PLAN_ID,  # content-addressed: the consumer can recompute it
            "kind": "plan",
            "tags": ["loop:1"],
            "media_type": match.str("text/plain"),
            "size_bytes": match.int(40, min=0),
            "created_at": match.regex("2026-01-05T10:00:00.000000Z", regex=TIMESTAMP_RE),
        },
        headers={
            "Location": match.regex(f"/v1/artifacts/{PLAN_ID}", regex=r"^/v1/artifacts/sha256(:|%3A)[0-9a-f]{64}$")
        },
    )
    with contract.client() as client:
        ref = client.put_artifact(kind="plan", content=PLAN_CONTENT, tags=["loop:1"])
    assert (ref.id, ref.kind, ref.tags) == (PLAN_ID, "plan", ["loop:1"])


def test_artifact_get(contract: Contract) -> None:
    i = contract.interaction("a request for the plan artifact", "GET", f"/v1/artifacts/{PLAN_ID}", state=PLAN_STORED)
    contract.responds(
        i,
        200,
        {
            "id": PLAN_ID,
            "kind": "plan",
            "tags": match.each_like("loop:1"),
            "media_type": match.str("text/plain"),
            "size_bytes": match.int(40, min=0),
            "created_at": match.regex("2026-01-05T10:00:00.000000Z", regex=TIMESTAMP_RE),
            "content": PLAN_CONTENT,
        },
    )
    with contract.client() as client:
        artifact = client.get_artifact(PLAN_ID)
    assert (artifact.id, artifact.content) == (PLAN_ID, PLAN_CONTENT)


MODEL = CatalogModelCreate(
    id="tiny-q4",
    model_ref="file:/models/tiny-q4.gguf",
    source="file:/models/tiny-q4.gguf",
    files=[CatalogFileSpec(path="/models/tiny-q4.gguf", sha256="ab" * 32, size_bytes=1024)],
)


def test_catalog_create(contract: Contract) -> None:
    i = contract.interaction(
        "a catalog registration", "POST", "/v1/catalog/models", body=MODEL.model_dump(mode="json", exclude_unset=True)
    )
    timestamp = match.regex("2026-01-05T10:00:00Z", regex=TIMESTAMP_RE)
    contract.responds(
        i,
        201,
        {
            "id": "tiny-q4",
            "model_ref": "file:/models/tiny-q4.gguf",
            "source": "file:/models/tiny-q4.gguf",
            "files": [{"path": "/models/tiny-q4.gguf", "sha256": "ab" * 32, "size_bytes": 1024}],
            "digest": "sha256:" + "ab" * 32,
            "tags": [],
            "manifests": {},
            "signatures": [],
            "sbom": None,
            "trust_policy": match.like(
                {"mode": "permissive", "allowed_sources": ["file:"], "require_signature": True, "require_sbom": False}
            ),
            "state": "Active",
            "state_reason": None,
            "retired_at": None,
            "drain_deadline_at": None,
            "verification": {"status": "unverified", "checked_at": None, "warnings": [], "errors": []},
            "created_at": timestamp,
            "updated_at": timestamp,
        },
    )
    with contract.client() as client:
        model = client.create_model(MODEL)
    assert (model.id, model.state, model.verification.status) == ("tiny-q4", "Active", "unverified")
    assert model.digest == "sha256:" + "ab" * 32


def test_catalog_verify(contract: Contract) -> None:
    i = contract.interaction(
        "a verification of catalog model tiny-q4", "POST", "/v1/catalog/models/tiny-q4/verify", state=MODEL_ON_DISK
    )
    contract.responds(
        i,
        200,
        {
            "status": "verified",
            "checked_at": match.regex("2026-01-05T10:00:03Z", regex=TIMESTAMP_RE),
            # The default policy wants a signature but is permissive: a warning, not an error.
            "warnings": match.each_like("no signature (the policy requires one)"),
            "errors": [],
        },
    )
    with contract.client() as client:
        result = client.verify_model("tiny-q4")
    assert (result.status, result.errors) == ("verified", [])
