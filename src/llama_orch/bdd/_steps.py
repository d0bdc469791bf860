"""Step definitions and hooks for the BDD features, over the SDK (:class:`llama_orch.client.Client`).

The features speak of tasks, streams, sessions, the catalog and artifacts; each step is a few SDK
calls. Steps never assume a particular server: sizes (max_tokens, slots, queue capacity) are read
from ``GET /v1/capabilities``, names are made unique per run, and whatever a scenario started
(tasks, catalog entries, files) is cancelled or removed after it, so the features can run against
a shared live orchestratord as well as the embedded one.

Steps are collected in this module (not behave's global registry) and handed to the runner by
:func:`registry`; the hooks are :data:`HOOKS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rfc8785
from behave.step_registry import StepRegistry

from llama_orch.client import (
    AdmissionRejectError,
    APIError,
    Client,
    LlamaOrchError,
    RetryPolicy,
    TaskEvent,
    last_response,
)
from llama_orch_api import (
    AdmissionResponse,
    CatalogFileSpec,
    CatalogModelCreate,
    EndEvent,
    ErrorEnvelope,
    PoolCapability,
    TokenEvent,
)

__all__ = ["HOOKS", "registry"]

Step = Callable[..., None]
_STEPS: list[tuple[str, str, Step]] = []
_CID = "bdd-runner"


def _step(keyword: str, pattern: str) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        _STEPS.append((keyword, pattern, fn))
        return fn

    return register


def given(pattern: str) -> Callable[[Step], Step]:
    return _step("given", pattern)


def when(pattern: str) -> Callable[[Step], Step]:
    return _step("when", pattern)


def then(pattern: str) -> Callable[[Step], Step]:
    return _step("then", pattern)


def step(pattern: str) -> Callable[[Step], Step]:
    """A step that reads as a precondition or an action (Given or When)."""
    return _step("step", pattern)


def registry() -> Any:
    """A fresh behave step registry holding every step of this module."""
    reg = StepRegistry()
    for keyword, pattern, fn in _STEPS:
        reg.add_step_definition(keyword, pattern, fn)
    return reg


# -- hooks ----------------------------------------------------------------------------------------------


def before_all(context: Any) -> None:
    context.config.setup_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the steps
    base_url = context.config.userdata.get("base_url")
    assert base_url, "the runner passes the server's URL as -D base_url=…"
    # One attempt per call: the features check what the server answers, including 429s, which the
    # SDK would otherwise retry. The API version is checked against the server's capabilities.
    token = context.config.userdata.get("token") or os.environ.get("LLORCH_TOKEN") or None
    context.client = Client(
        base_url, token=token, retry=RetryPolicy(max_attempts=1), limiter=None, correlation_id=_CID, timeout=60
    )
    context.run_id = os.urandom(3).hex()


def after_all(context: Any) -> None:
    client = getattr(context, "client", None)
    if client is not None:
        client.close()


def before_scenario(context: Any, scenario: Any) -> None:
    context.tasks = []  # AdmissionResponse of every task this scenario got admitted
    context.models = []  # catalog ids this scenario registered
    context.workdir = Path(tempfile.mkdtemp(prefix="llorch-bdd-"))
    context.error = None
    context.admission = None


def after_scenario(context: Any, scenario: Any) -> None:
    client: Client = context.client
    # Nothing a scenario started outlives it: the next one finds idle pools, a clean catalog.
    for admission in context.tasks:
        with contextlib.suppress(LlamaOrchError):
            client.cancel(admission.task_id)
    for model_id in context.models:
        with contextlib.suppress(LlamaOrchError):
            client.delete_model(model_id)
    shutil.rmtree(context.workdir, ignore_errors=True)


HOOKS: dict[str, Callable[..., None]] = {
    "before_all": before_all,
    "after_all": after_all,
    "before_scenario": before_scenario,
    "after_scenario": after_scenario,
}


# -- helpers ----------------------------------------------------------------------------------------------


def _unique(context: Any, name: str) -> str:
    return f"{name}-{context.run_id}"


def _pool(context: Any, pool_id: str = "default") -> PoolCapability:
    client: Client = context.client
    caps = client.capabilities()
    for pool in caps.pools:
        if pool.id == pool_id:
            return pool
    raise AssertionError(f"the server has no pool {pool_id!r} (it has {[p.id for p in caps.pools]})")


def _try(context: Any, call: Callable[[], Any]) -> Any:
    """Run an SDK call; keep its answer, or the API error it raised, for the Then steps."""
    context.error = None
    try:
        return call()
    except APIError as error:
        context.error = error
        return None


def _submit(context: Any, **fields: Any) -> AdmissionResponse | None:
    admission: AdmissionResponse | None = _try(context, lambda: context.client.create_task(**fields))
    context.admission = admission
    if admission is not None:
        context.tasks.append(admission)
    return admission


def _admit(context: Any, **fields: Any) -> AdmissionResponse:
    admission = _submit(context, **fields)
    assert admission is not None, f"the task was not admitted: {context.error}"
    return admission


def _events(context: Any, task_id: str, after: int | None = None) -> list[TaskEvent]:
    return list(context.client.stream(task_id, last_event_id=after, raise_on_error=False))


def _wait_started(context: Any, task_id: str) -> None:
    for event in context.client.stream(task_id, raise_on_error=False):
        if event.event == "started":
            return
    raise AssertionError(f"task {task_id} ended before it started")


def _long(context: Any) -> int:
    """A task that outlives any scenario (it is cancelled after it): the pool's largest."""
    return _pool(context).max_tokens


# -- admission ----------------------------------------------------------------------------------------------


@when('I submit a task with prompt "{prompt}" and max_tokens {n:d}')
def submit_task(context: Any, prompt: str, n: int) -> None:
    _submit(context, prompt=prompt, max_tokens=n, seed=7)


@when('I submit a task with prompt "{prompt}" pinned to pool "{pool}"')
def submit_pinned(context: Any, prompt: str, pool: str) -> None:
    _submit(context, prompt=prompt, max_tokens=4, pool=pool)


@when('I submit a task with prompt "{prompt}" and sampler profile "{profile}"')
def submit_profile(context: Any, prompt: str, profile: str) -> None:
    _submit(context, prompt=prompt, max_tokens=4, sampler_profile_version=profile)


@when('I submit a task asking for one token more than pool "{pool}" allows')
def submit_too_long(context: Any, pool: str) -> None:
    _submit(context, prompt="hello", max_tokens=_pool(context, pool).max_tokens + 1, pool=pool)


@step('a task "{name}" was admitted')
def task_admitted(context: Any, name: str) -> None:
    _admit(context, task_id=_unique(context, name), prompt="hello", max_tokens=2)


@when('I submit a task "{name}" again')
def submit_again(context: Any, name: str) -> None:
    _submit(context, task_id=_unique(context, name), prompt="hello", max_tokens=2)


@when("I submit a batch task without retrying")
def submit_batch(context: Any) -> None:
    _submit(context, prompt="one more", max_tokens=4, priority="batch")


@then("the task is admitted with a queue position, a predicted start and a stream url")
def admitted(context: Any) -> None:
    admission: AdmissionResponse | None = context.admission
    assert admission is not None, f"the task was refused: {context.error}"
    assert admission.queue_position >= 0 and admission.predicted_start_ms >= 0
    assert admission.stream_url == f"/v1/tasks/{admission.task_id}/stream", admission.stream_url


@then("the answer echoes my correlation id")
def echoes_cid(context: Any) -> None:
    info = last_response()
    assert info is not None and info.correlation_id == _CID, info


@then('the request is refused with code "{code}" and status {status:d}')
def refused(context: Any, code: str, status: int) -> None:
    error: APIError | None = context.error
    assert error is not None, f"expected {code}, but the call succeeded ({context.admission})"
    assert (error.code, error.status) == (code, status), repr(error)
    assert error.message, "an error envelope always has a message"
    assert error.correlation_id == _CID, error.correlation_id


# -- streams ------------------------------------------------------------------------------------------------


@step('I run a task with prompt "{prompt}", max_tokens {n:d} and seed {seed:d}')
def run_task(context: Any, prompt: str, n: int, seed: int) -> None:
    admission = _admit(context, prompt=prompt, max_tokens=n, seed=seed)
    context.events = _events(context, admission.task_id)
    context.runs = [*getattr(context, "runs", []), context.events]


@given('a task with prompt "{prompt}", max_tokens {n:d} and seed {seed:d} has finished')
def task_finished(context: Any, prompt: str, n: int, seed: int) -> None:
    run_task(context, prompt, n, seed)
    assert context.events[-1].event == "end", context.events[-1]


@when("I read its stream after event {n:d}")
def read_after(context: Any, n: int) -> None:
    context.events = _events(context, context.admission.task_id, after=n)


@then('its events start with "started" before any "token"')
def started_first(context: Any) -> None:
    names = [e.event for e in context.events if e.event != "metrics"]
    assert names[0] == "started" and "token" in names, names
    assert names.index("started") < names.index("token"), names


@then("it streamed {n:d} tokens numbered from 0")
def tokens_numbered(context: Any, n: int) -> None:
    tokens = [e.data for e in context.events if isinstance(e.data, TokenEvent)]
    assert [t.i for t in tokens] == list(range(n)), [t.i for t in tokens]


@then('its last event is "end" reporting {n:d} tokens')
def ends(context: Any, n: int) -> None:
    last = context.events[-1]
    assert isinstance(last.data, EndEvent) and last.data.tokens_out == n, last
    assert [e.event for e in context.events].count("end") == 1


@then("both runs produced the same text")
def same_text(context: Any) -> None:
    texts = ["".join(e.data.t for e in run if isinstance(e.data, TokenEvent)) for run in context.runs]
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0], texts


@then("the first event read has id {n:d}")
def first_id(context: Any, n: int) -> None:
    assert context.events and context.events[0].id == n, [e.id for e in context.events]


@then('the events read end with "{name}"')
def read_ends_with(context: Any, name: str) -> None:
    assert context.events[-1].event == name, context.events[-1]


# -- cancellation -------------------------------------------------------------------------------------------


@given("a long task is running")
def long_running(context: Any) -> None:
    context.target = _admit(context, prompt="a long story", max_tokens=_long(context))
    _wait_started(context, context.target.task_id)


@given('every slot of pool "{pool}" is busy')
def slots_busy(context: Any, pool: str) -> None:
    capability = _pool(context, pool)
    running = [
        _admit(context, prompt=f"busy {i}", max_tokens=capability.max_tokens, pool=pool)
        for i in range(capability.concurrency)
    ]
    for admission in running:
        _wait_started(context, admission.task_id)


@given("a task is queued behind them")
def queued_behind(context: Any) -> None:
    context.target = _admit(context, prompt="waiting", max_tokens=4)
    assert context.target.predicted_start_ms > 0, context.target


@when("I cancel it")
@when("I cancel the queued task")
def cancel_target(context: Any) -> None:
    context.client.cancel(context.target.task_id)
    context.events = _events(context, context.target.task_id)


@when('I cancel task "{task_id}"')
def cancel_named(context: Any, task_id: str) -> None:
    _try(context, lambda: context.client.cancel(_unique(context, task_id)))


@then('its stream ends with the error "{code}"')
def stream_error(context: Any, code: str) -> None:
    last = context.events[-1]
    assert isinstance(last.data, ErrorEnvelope) and str(last.data.code) == code, last
    assert [e.event for e in context.events].count("error") == 1


@then("it streamed fewer tokens than it asked for")
def fewer_tokens(context: Any) -> None:
    tokens = sum(1 for e in context.events if e.event == "token")
    assert tokens < _long(context), tokens


@then("it never started")
def never_started(context: Any) -> None:
    names = [e.event for e in context.events]
    assert "started" not in names and "token" not in names, names


# -- backpressure -------------------------------------------------------------------------------------------


@given('the queue of pool "{pool}" is full')
def queue_full(context: Any, pool: str) -> None:
    capability = _pool(context, pool)
    assert capability.queue_policy == "reject", f"pool {pool!r} drops instead of refusing ({capability.queue_policy})"
    context.fillers = []
    # Every slot busy and every queue place taken: at most concurrency + capacity admissions.
    for i in range(capability.concurrency + capability.queue_capacity + 1):
        admission = _submit(context, prompt=f"filler {i}", max_tokens=capability.max_tokens, pool=pool)
        if admission is None:
            assert isinstance(context.error, AdmissionRejectError), repr(context.error)
            return
        context.fillers.append(admission)
    raise AssertionError(f"pool {pool!r} admitted {len(context.fillers)} tasks and never refused one")


@when("the queued tasks are cancelled")
def cancel_fillers(context: Any) -> None:
    for admission in context.fillers:
        context.client.cancel(admission.task_id)


@then("the refusal advises a wait in Retry-After and X-Backoff-Ms")
def backoff_advice(context: Any) -> None:
    error: APIError = context.error
    info = last_response()
    assert info is not None and info.status == 429, info
    headers = {k.lower(): v for k, v in info.headers.items()}
    assert int(headers["retry-after"]) >= 1, headers
    assert int(headers["x-backoff-ms"]) == error.retry_after_ms, (headers, error.retry_after_ms)
    assert error.retriable


@then('the refusal\'s policy label is "{label}"')
def policy_label(context: Any, label: str) -> None:
    assert context.error.policy_label == label, context.error.envelope


# -- sessions -----------------------------------------------------------------------------------------------


@given('a task in session "{name}" ran to its end')
def session_task(context: Any, name: str) -> None:
    admission = _admit(context, session_id=_unique(context, name), prompt="a turn", max_tokens=3, seed=1)
    assert _events(context, admission.task_id)[-1].event == "end"


@when('I look up session "{name}"')
def look_up_session(context: Any, name: str) -> None:
    context.session = _try(context, lambda: context.client.get_session(_unique(context, name)))


@when('I delete session "{name}"')
def delete_session(context: Any, name: str) -> None:
    context.client.delete_session(_unique(context, name))


@then("the session has {n:d} turn")
@then("the session has {n:d} turns")
def session_turns(context: Any, n: int) -> None:
    assert context.session is not None, context.error
    assert context.session.turns == n, context.session


@when('I submit a task in session "{name}" with a budget of {tokens:d} tokens and max_tokens {n:d}')
def budgeted(context: Any, name: str, tokens: int, n: int) -> None:
    _submit(context, session_id=_unique(context, name), prompt="plan", max_tokens=n, budget={"tokens": tokens})


# -- catalog ------------------------------------------------------------------------------------------------


@given("a model file on disk")
def model_file(context: Any) -> None:
    context.model_file = context.workdir / "model.gguf"
    context.model_file.write_bytes(b"GGUF" + os.urandom(4092))
    context.model_id = _unique(context, f"bdd-model-{len(context.models)}")


def _register(context: Any) -> None:
    data = context.model_file.read_bytes()
    spec = CatalogModelCreate(
        id=context.model_id,
        model_ref=f"file:{context.model_file}",
        source=f"file:{context.model_file}",
        files=[
            CatalogFileSpec(path=str(context.model_file), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
        ],
    )
    context.model = _try(context, lambda: context.client.create_model(spec))
    if context.model is not None:
        context.models.append(context.model_id)


@step("I register it in the catalog with its real digest")
@step("it is registered in the catalog with its real digest")
def register(context: Any) -> None:
    _register(context)
    assert context.model is not None, context.error


@when("I register it in the catalog again")
def register_again(context: Any) -> None:
    _register(context)


@then('the catalog entry is "{state}" and "{status}"')
def entry_state(context: Any, state: str, status: str) -> None:
    assert (str(context.model.state), str(context.model.verification.status)) == (state, status), context.model


@when("the file changes on disk")
def file_changes(context: Any) -> None:
    size = context.model_file.stat().st_size
    context.model_file.write_bytes(b"GGUF" + bytes(size - 4))


@when("I verify it")
def verify(context: Any) -> None:
    context.verification = context.client.verify_model(context.model_id)


@then('the verification status is "{status}"')
def verification_status(context: Any, status: str) -> None:
    assert str(context.verification.status) == status, context.verification


@then('the verification names a "{word}"')
def verification_error(context: Any, word: str) -> None:
    assert any(word in e for e in context.verification.errors), context.verification.errors


# -- artifacts ----------------------------------------------------------------------------------------------


def _store(context: Any, kind: str, content: str, *, tags: list[str] | None = None, parent: str | None = None) -> None:
    ref = context.client.put_artifact(kind=kind, content=content, tags=tags or [], parent=parent)
    context.stored = [*getattr(context, "stored", []), (ref, kind, content, parent)]


@when('I store a "{kind}" artifact with content "{content}" tagged "{tag}"')
def store_tagged(context: Any, kind: str, content: str, tag: str) -> None:
    _store(context, kind, content, tags=[tag])


@when('I store a "{kind}" artifact with content "{content}" whose parent is the last one')
def store_child(context: Any, kind: str, content: str) -> None:
    _store(context, kind, content, parent=context.stored[-1][0].id)


# After the longer patterns above: parse's {content} would match their text too.
@when('I store a "{kind}" artifact with content "{content}"')
def store(context: Any, kind: str, content: str) -> None:
    _store(context, kind, content)


@then("its id is the SHA-256 of its kind, content and parent")
def content_address(context: Any) -> None:
    ref, kind, content, parent = context.stored[-1]
    digest = hashlib.sha256(rfc8785.dumps({"kind": kind, "content": content, "parent": parent})).hexdigest()
    assert ref.id == f"sha256:{digest}", (ref.id, digest)


@then("fetching it gives back the same content")
def fetch_same(context: Any) -> None:
    ref, _, content, _ = context.stored[-1]
    assert context.client.get_artifact(ref.id).content == content


@then("both stores gave the same id")
def same_id(context: Any) -> None:
    ids = {ref.id for ref, *_ in context.stored}
    assert len(context.stored) == 2 and len(ids) == 1, ids


@then('the artifact is tagged "{a}" and "{b}"')
def tagged(context: Any, a: str, b: str) -> None:
    artifact = context.client.get_artifact(context.stored[-1][0].id)
    assert {a, b} <= set(artifact.tags), artifact.tags


@then("the lineage of the last artifact lists the one before")
def lineage(context: Any) -> None:
    (child, *_), (parent, *_) = context.stored[-1], context.stored[-2]
    found = context.client.artifact_lineage(child.id)
    assert [a.id for a in found.ancestors] == [parent.id], found
    assert found.root == parent.id, found
