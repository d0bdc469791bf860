"""Every engine adapter through the same cases, against recorded responses of its engine.

Subjects: the five HTTP adapters (llamacpp, vllm, openai, tgi, triton), each replaying recordings
of its engine's wire format (``tests/engines/recorded/<engine>/``; where each comes from is in
``recorded/README.md``; llama.cpp's are recorded from a real ``llama-server``), and the mock engine
twice: in process (``MockEngine``, faults injected) and over HTTP (its llama.cpp-format server,
read by ``LlamaCppEngine``).

Cases, the same for every subject that can meet them:

- stream: the recorded stream gives exactly the tokens it carries; cut into awkward reads (mid-line,
  inside a UTF-8 character, between the two LFs ending an event), the same; in one read, one batch;
- cancel: closing the stream after its first batch hangs up on the engine;
- failures: nothing listening, the connection dropped mid-stream (the tokens before it kept), the
  stream ended before its end marker, an empty body, malformed events;
- the error table: every row of each adapter's docstring table is exercised (a test checks the
  table against the cases below), and every recorded error answer or in-stream error is mapped to
  its row's code, ``retriable`` and ``retry_after_ms`` (429/503 advice honoured, 1 s without any).

What is particular to one adapter (its request payload, ``fetch_info``, model discovery, keys)
stays in that adapter's own test module.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

from llama_orch.engines import (
    Engine,
    LlamaCppEngine,
    MockEngine,
    MockFaults,
    MockSettings,
    OpenAIEngine,
    TGIEngine,
    TritonEngine,
    VLLMEngine,
    llamacpp,
    mock_tokens,
    openai,
    tgi,
    triton,
    vllm,
)
from llama_orch.engines._http import HTTPEngine
from llama_orch.engines.mock_server import ENGINE_KEY, make_app
from llama_orch_api import ErrorCode
from tests.conftest import free_port
from tests.engines._fake import (
    Expect,
    FakeServer,
    Handler,
    StartFake,
    batches,
    check,
    collect,
    collect_until_error,
    eventually,
    refused_url,
    req,
)
from tests.engines._recorded import RECORDED, Recording, endless, first_events, load, replay, split

KEY_ENV = "LLORCH_TEST_CONFORMANCE_KEY"

# -- staging: what a test starts, all of it stopped after the test -------------------------------------


@dataclass
class Staged:
    """An adapter started against a scenario, and how to tell that it hung up on its engine."""

    engine: Engine
    hung_up: Callable[[], bool]
    fake: FakeServer | None = None


@dataclass
class Stage:
    serve: StartFake
    """Fake engine servers (``fake_server``)."""
    start: Callable[[Engine], Awaitable[Engine]]
    """Adapters, started (``started``)."""
    runners: list[web.AppRunner] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-conformance")


@pytest.fixture
async def stage(fake_server: StartFake, started: Callable[[Engine], Awaitable[Engine]]) -> AsyncIterator[Stage]:
    staged = Stage(fake_server, started)
    try:
        yield staged
    finally:
        for close in reversed(staged.closers):
            await close()
        for runner in reversed(staged.runners):
            await runner.cleanup()


# -- the subjects ----------------------------------------------------------------------------------

# Scenarios every subject meets: the recorded (or generated) stream, an endless one to cancel, and a
# connection dropped after two tokens. The error table adds each subject's own rows.
STREAM, ENDLESS, DROPPED = "stream", "endless", "dropped"


class Subject(abc.ABC):
    name: str
    tokens: tuple[str, ...]
    rows: Mapping[str, Expect]
    """Error scenarios beyond the shared ones, and what the adapter must raise for each."""
    engine_name: str = ""
    """The ``engine`` its errors name, when not its own name."""

    @property
    def reported_as(self) -> str:
        return self.engine_name or self.name

    @abc.abstractmethod
    async def start(self, stage: Stage, scenario: str) -> Staged:
        """An adapter, started, whose engine plays ``scenario``."""

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, repr=False)
class Wire(Subject):
    """An HTTP adapter and the recordings of its engine."""

    name: str
    module: ModuleType
    """The adapter's module: its docstring holds the error table."""
    route: str
    make: Callable[[str], HTTPEngine]
    tokens: tuple[str, ...]
    """The text ``stream.http`` carries, token by token."""
    end_events: int
    """How many events at the end of ``stream.http`` end the stream (0: the end of the body does)."""
    table: Mapping[str, tuple[str, ...]]
    """Each row of the docstring table (its first column) and the scenarios or tests that exercise it."""
    rows: Mapping[str, Expect]
    malformed: tuple[bytes, ...] = ()
    """Events this adapter must refuse as malformed, beyond those that are no JSON object at all."""

    def recording(self, name: str = STREAM) -> Recording:
        return load(self.name, name)

    def handler(self, scenario: str) -> Handler | None:
        stream = self.recording()
        if scenario == STREAM:
            return replay(stream)
        if scenario == ENDLESS:
            return endless(stream)
        if scenario == DROPPED:
            return first_events(stream, 2, drop=True)
        if scenario == "cut":
            return first_events(stream, len(stream.events()) - self.end_events, drop=False)
        if scenario == "empty":
            return replay(replace(stream, body=b""))
        if scenario == "refused":
            return None
        return replay(self.recording(scenario))

    async def start(self, stage: Stage, scenario: str) -> Staged:
        return await self.start_with(stage, self.handler(scenario))

    async def start_with(self, stage: Stage, handler: Handler | None) -> Staged:
        if handler is None:
            engine = await stage.start(self.make(refused_url()))
            return Staged(engine, lambda: False)
        fake = await stage.serve({self.route: handler})
        engine = await stage.start(self.make(fake.base_url))
        return Staged(engine, lambda: fake.disconnects > 0, fake)


def _expect(code: ErrorCode, retriable: bool, retry_after_ms: int | None, says: str = "", *tokens: str) -> Expect:
    return Expect(code, retriable, retry_after_ms, tuple(tokens), says)


POOL, ENGINE, RESET = ErrorCode.POOL_UNAVAILABLE, ErrorCode.ENGINE_ERROR, ErrorCode.WORKER_RESET

WL = "test_workloads.py::"  # rows the workload tests of engines/ exercise

LLAMACPP = Wire(
    name="llamacpp",
    module=llamacpp,
    route="POST /completion",
    make=lambda url: LlamaCppEngine(url, slots=2, ctx_max=2048, version="b1234"),
    tokens=(" the", " capital", " of", " the", " country", " of", " France", "."),
    end_events=1,
    table={
        "connection refused / DNS / TLS": ("refused",),
        "HTTP 503 or 429 (loading, no slot)": ("http-503-loading", "mock-http:no-slot"),
        "other HTTP 5xx": ("http-500",),
        "HTTP 4xx": ("context-exceeded", "http-401"),
        "connection dropped mid-stream": (DROPPED,),
        "stream ended without ``stop``": ("cut", "empty"),
        "error object inside the stream [1]_": ("stream-error-data", "stream-error-field"),
        "event that is not a JSON object": ("malformed",),
        "HTTP 501 (no ``--embeddings``)": (
            "test_workloads.py::test_llamacpp_server_without_the_flag_answers_501_mapped",
        ),
        "embeddings: not one vector per input": (WL + "test_malformed_embeddings_are_engine_errors",),
        "embeddings, ``embeddings=False``": (
            "test_workloads.py::test_llamacpp_without_embeddings_refuses_them_without_asking",
        ),
    },
    rows={
        "http-503-loading": _expect(POOL, True, 1000, "Loading model"),
        "http-500": _expect(ENGINE, True, None, "Failed to decode the batch"),
        "context-exceeded": _expect(ENGINE, False, None, "exceeds the available context size"),
        "http-401": _expect(ENGINE, False, None, "authentication with llamacpp"),
        "stream-error-data": _expect(ENGINE, False, None, "kv cache is full", " the", " capital"),
        "stream-error-field": _expect(ENGINE, False, None, "Failed to decode the batch", " the", " capital"),
    },
)
VLLM = Wire(
    name="vllm",
    module=vllm,
    route="POST /v1/completions",
    make=lambda url: VLLMEngine(url, model="google/gemma-3-270m"),
    tokens=(" Paris", ",", " the", " ville", " lumière", " of", " France", "."),
    end_events=1,
    table={
        "connection refused / DNS / TLS": ("refused",),
        "HTTP 503 (engine loading, sleeping) or 429": ("http-503-sleeping", "http-429-limited"),
        "HTTP 401 (``--api-key`` set, key wrong)": ("http-401",),
        "HTTP 400 ``BadRequestError``, other 4xx": ("http-400-context", "http-400-nested", "http-404-model"),
        "HTTP 5xx (other than 503)": ("http-500",),
        "connection dropped mid-stream": (DROPPED,),
        "stream ended without ``data: [DONE]``": ("cut", "empty"),
        '``data: {"error": {...}}`` inside the stream': ("stream-error",),
        "malformed event (not JSON, no ``choices``)": ("malformed",),
    },
    rows={
        "http-503-sleeping": _expect(POOL, True, 1000, "The engine is sleeping"),
        "http-429-limited": _expect(POOL, True, 3000, "Too many requests"),
        "http-401": _expect(ENGINE, False, None, "authentication with vllm"),
        "http-400-context": _expect(ENGINE, False, None, "maximum context length is 2048"),
        "http-400-nested": _expect(ENGINE, False, None, "top_k must be"),
        "http-404-model": _expect(ENGINE, False, None, "does not exist"),
        "http-500": _expect(ENGINE, True, None, "EngineCore"),
        "stream-error": _expect(ENGINE, False, None, "illegal memory access", " Paris", ","),
    },
    malformed=(b'data: {"object": "text_completion"}\n\n',),
)
OPENAI = Wire(
    name="openai",
    module=openai,
    route="POST /v1/completions",
    make=lambda url: OpenAIEngine(f"{url}/v1", model="gpt-test", api_key_env=KEY_ENV),
    tokens=("\n\n", "Paris", " —", " the", " capital", " of", " France", "."),
    end_events=1,
    table={
        "connection refused / DNS / TLS": ("refused",),
        "HTTP 429 (rate limit) or 503": (
            "http-429-retry-after",
            "http-429-retry-after-ms",
            "http-429-no-advice",
            "http-503-overloaded",
        ),
        "HTTP 429 with code ``insufficient_quota``": ("http-429-quota",),
        'HTTP 401 or 403 ("authentication failed")': ("http-401", "http-403"),
        "other HTTP 4xx": ("http-400", "http-404"),
        "other HTTP 5xx": ("http-500", "http-502-proxy"),
        "connection dropped mid-stream": (DROPPED,),
        "stream ended without ``data: [DONE]``": ("cut", "empty"),
        '``{"error": ...}`` event inside the stream': ("stream-error",),
        "malformed event (not JSON, no ``choices``)": ("malformed",),
        "no model given and ``/models`` lists none": ("test_openai.py::test_no_model_served_is_an_engine_error",),
        "``fetch_info``: the model is not listed": ("test_openai.py::test_fetch_info_errors",),
        "embeddings: not one vector per input": (WL + "test_malformed_embeddings_are_engine_errors",),
        "a workload the adapter was not built for": (
            "test_registry.py::test_a_registry_built_adapter_still_refuses_what_it_does_not_serve",
        ),
    },
    rows={
        "http-429-retry-after": _expect(POOL, True, 7000, "Rate limit reached"),
        "http-429-retry-after-ms": _expect(POOL, True, 250, "Rate limit reached"),
        "http-429-no-advice": _expect(POOL, True, 1000),
        "http-503-overloaded": _expect(POOL, True, 2000, "overloaded"),
        "http-429-quota": _expect(ENGINE, False, None, "quota exhausted"),
        "http-401": _expect(ENGINE, False, None, "authentication with openai"),
        "http-403": _expect(ENGINE, False, None, "failed (403)"),
        "http-400": _expect(ENGINE, False, None, "maximum context length is 4097"),
        "http-404": _expect(ENGINE, False, None, "does not exist"),
        "http-500": _expect(ENGINE, True, None, "answered 500"),
        "http-502-proxy": _expect(ENGINE, True, None, "502 Bad Gateway"),
        "stream-error": _expect(ENGINE, False, None, "had an error", "\n\n", "Paris"),
    },
    malformed=(
        b'data: {"id": "x", "object": "text_completion"}\n\n',
        b'data: {"choices": [{"index": 0, "text": 42}]}\n\n',
        b'data: {"choices": ["a"]}\n\n',
    ),
)
TGI = Wire(
    name="tgi",
    module=tgi,
    route="POST /generate_stream",
    make=lambda url: TGIEngine(url),
    tokens=(" Paris", " (", "Île", "-de", "-France", ")", "."),
    end_events=1,
    table={
        "connection refused / DNS / TLS": ("refused",),
        "``overloaded`` (429 or in stream), HTTP 503": ("http-429-overloaded", "stream-overloaded", "http-503-shard"),
        "``validation`` (422 or in stream)": ("http-422-validation", "stream-validation"),
        "``generation`` (424 or in stream) [1]_": ("http-424-generation", "stream-generation"),
        "``incomplete_generation`` (500 or in stream) [2]_": ("http-500-incomplete", "stream-incomplete"),
        "other HTTP 4xx": ("http-404",),
        "other HTTP 5xx": ("http-502",),
        "connection dropped mid-stream": (DROPPED,),
        "stream ended without the final event [3]_": ("cut", "empty"),
        'other ``{"error": ...}`` event in the stream': ("stream-untyped-error",),
        "malformed event (not JSON, no ``token.text``)": ("malformed",),
        "chat stream ended without ``data: [DONE]``": (
            "test_workloads.py::test_tgi_chat_stream_cut_before_done_is_a_reset",
        ),
        "``/embed``: not one vector per input": (
            "test_workloads.py::test_tei_embed_answer_must_be_one_vector_per_input",
        ),
        "a workload the adapter was not built for": (WL + "test_tei_embed_and_its_errors",),
    },
    rows={
        "http-429-overloaded": _expect(POOL, True, 1000, "Model is overloaded"),
        "stream-overloaded": _expect(POOL, True, 1000, "overloaded"),
        "http-503-shard": _expect(POOL, True, 1000, "shard not ready"),
        "http-422-validation": _expect(ENGINE, False, None, "must be <= 4096"),
        "stream-validation": _expect(ENGINE, False, None, "strictly positive"),
        "http-424-generation": _expect(ENGINE, True, None, "CUDA out of memory"),
        "stream-generation": _expect(ENGINE, True, None, "failed during generation", " Paris", " ("),
        "http-500-incomplete": _expect(RESET, True, 1000, "Incomplete generation"),
        "stream-incomplete": _expect(RESET, True, 1000, "Incomplete generation", " Paris"),
        "http-404": _expect(ENGINE, False, None, "answered 404"),
        "http-502": _expect(ENGINE, True, None, "upstream gone"),
        "stream-untyped-error": _expect(ENGINE, False, None, "best_of"),
    },
    malformed=(
        b'data:{"generated_text": null}\n\n',
        b'data:{"token": {"id": 1, "text": null}}\n\n',
        b'data:{"error": "odd", "error_type": ["overloaded"]}\n\n',  # an error, of no known type
    ),
)
TRITON = Wire(
    name="triton",
    module=triton,
    route="POST /v2/models/ensemble/generate_stream",
    make=lambda url: TritonEngine(url, model="ensemble"),
    tokens=(" Madrid", ",", " in", " the", " heart", " of", " España", "."),
    end_events=0,
    table={
        "connection refused / DNS / TLS": ("refused",),
        "HTTP 503 (model not ready, queue full) or 429": ("http-503-queue-full", "http-429-limited"),
        "HTTP 4xx (unknown model, bad input)": ("http-400-unknown-model", "http-400-bad-input"),
        "other HTTP 5xx": ("http-500",),
        "connection dropped mid-stream": (DROPPED,),
        "stream ended before a single response": ("empty",),
        '``data: {"error": "..."}`` inside the stream': ("stream-error",),
        "malformed event (not JSON, no ``text_output``)": ("malformed",),
        "a chat (``messages``) or embedding request": (
            "test_workloads.py::test_triton_refuses_chat_and_embeddings_plainly",
        ),
    },
    rows={
        "http-503-queue-full": _expect(POOL, True, 1000, "maximum queue size"),
        "http-429-limited": _expect(POOL, True, 1500, "rate limited"),
        "http-400-unknown-model": _expect(ENGINE, False, None, "unknown model"),
        "http-400-bad-input": _expect(ENGINE, False, None, "unexpected inference input"),
        "http-500": _expect(ENGINE, True, None, "Failed to process"),
        "stream-error": _expect(ENGINE, False, None, "in-flight batcher", " Madrid", ","),
    },
    malformed=(
        b'data: {"model_name": "ensemble", "model_version": "1"}\n\n',
        b'data: {"model_name": "ensemble", "text_output": 7}\n\n',
    ),
)
WIRES = (LLAMACPP, VLLM, OPENAI, TGI, TRITON)

# The mock engine: the same stream and failures, made by its fault injection instead of recordings.
FAST = MockSettings(tokens_per_s=None, first_token_ms=0)
PACED = MockSettings(tokens_per_s=100, first_token_ms=0, slots=1)
MOCK_TOKENS = tuple(mock_tokens(req()))


def _mock_settings(scenario: str) -> MockSettings:
    if scenario == STREAM:
        return FAST
    if scenario in (ENDLESS, "no-slot"):
        return PACED
    faults = {DROPPED: MockFaults(reset_after_tokens=2), "fault-error": MockFaults(error_after_tokens=2)}[scenario]
    return FAST.model_copy(update={"faults": faults})


class InProcessMock(Subject):
    name = "mock"
    tokens = MOCK_TOKENS
    rows = {"fault-error": _expect(ENGINE, False, None, "injected error after 2 tokens", *MOCK_TOKENS[:2])}

    async def start(self, stage: Stage, scenario: str) -> Staged:
        engine = MockEngine(_mock_settings(scenario))
        await stage.start(engine)
        return Staged(engine, lambda: engine.started_streams > 0 and engine.active == 0)


class MockOverHTTP(Subject):
    name = "mock-http"
    engine_name = "llamacpp"  # the adapter that reads the mock engine's server
    tokens = MOCK_TOKENS
    rows = {
        "fault-error": _expect(ENGINE, False, None, "injected error after 2 tokens", *MOCK_TOKENS[:2]),
        "no-slot": _expect(POOL, True, 1000, "no slot available"),
    }

    async def start(self, stage: Stage, scenario: str) -> Staged:
        app = make_app(_mock_settings(scenario))
        mock = app[ENGINE_KEY]
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        stage.runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        engine = await stage.start(LlamaCppEngine(f"http://127.0.0.1:{port}"))
        if scenario == "no-slot":  # its one slot held by a long stream
            holder = engine.stream(req(prompt="holder", max_tokens=100_000))
            assert await holder.__anext__()
            stage.closers.append(holder.aclose)
        return Staged(engine, lambda: mock.started_streams > 0 and mock.active == 0)


SUBJECTS: tuple[Subject, ...] = (*WIRES, InProcessMock(), MockOverHTTP())


def _ids(subjects: tuple[Subject, ...]) -> list[str]:
    return [s.name for s in subjects]


# -- shared cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", SUBJECTS, ids=_ids(SUBJECTS))
async def test_stream(stage: Stage, subject: Subject) -> None:
    staged = await subject.start(stage, STREAM)
    assert await collect(staged.engine, req()) == list(subject.tokens)
    if staged.fake is not None:
        assert isinstance(subject, Wire)
        assert staged.fake.count(subject.route) == 1


@pytest.mark.parametrize("subject", SUBJECTS, ids=_ids(SUBJECTS))
async def test_closing_the_stream_hangs_up_on_the_engine(stage: Stage, subject: Subject) -> None:
    staged = await subject.start(stage, ENDLESS)
    stream = staged.engine.stream(req(max_tokens=100_000))
    assert await stream.__anext__()
    assert not staged.hung_up()
    await stream.aclose()
    await eventually(staged.hung_up, f"{subject.name}'s engine sees the stream closed")


@pytest.mark.parametrize("subject", SUBJECTS, ids=_ids(SUBJECTS))
async def test_a_connection_dropped_mid_stream_is_a_retriable_reset(stage: Stage, subject: Subject) -> None:
    staged = await subject.start(stage, DROPPED)
    got, err = await collect_until_error(staged.engine, req())
    check(got, err, _expect(RESET, True, 1000, "", *subject.tokens[:2]), subject.reported_as)


ROWS = [pytest.param(s, row, id=f"{s.name}:{row}") for s in SUBJECTS for row in s.rows]


@pytest.mark.parametrize(("subject", "row"), ROWS)
async def test_error_table(stage: Stage, subject: Subject, row: str) -> None:
    staged = await subject.start(stage, row)
    got, err = await collect_until_error(staged.engine, req())
    check(got, err, subject.rows[row], subject.reported_as)
    assert err.envelope().code == err.code  # it reaches a stream's error event as it is


# -- what only the HTTP adapters meet -----------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
async def test_stream_split_across_reads_anywhere(stage: Stage, wire: Wire) -> None:
    staged = await wire.start_with(stage, split(wire.recording()))
    assert await collect(staged.engine, req()) == list(wire.tokens)


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
async def test_events_in_one_read_come_as_one_batch(stage: Stage, wire: Wire) -> None:
    staged = await wire.start(stage, STREAM)  # the recording's body in one write
    assert await batches(staged.engine, req()) == [list(wire.tokens)]


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
async def test_nothing_listening_is_a_retriable_pool_unavailable(stage: Stage, wire: Wire) -> None:
    staged = await wire.start(stage, "refused")
    got, err = await collect_until_error(staged.engine, req())
    check(got, err, _expect(POOL, True, 1000, "is unreachable"), wire.name)
    assert await staged.engine.health() is False


ENDED_BY_EVENT = tuple(w for w in WIRES if w.end_events)


@pytest.mark.parametrize("wire", ENDED_BY_EVENT, ids=_ids(ENDED_BY_EVENT))
async def test_a_stream_cut_before_its_end_event_is_a_retriable_reset(stage: Stage, wire: Wire) -> None:
    staged = await wire.start(stage, "cut")
    got, err = await collect_until_error(staged.engine, req())
    check(got, err, _expect(RESET, True, 1000, "ended the stream without", *wire.tokens), wire.name)


ENDED_BY_BODY = tuple(w for w in WIRES if not w.end_events)


@pytest.mark.parametrize("wire", ENDED_BY_BODY, ids=_ids(ENDED_BY_BODY))
async def test_a_stream_without_end_event_ends_with_its_body(stage: Stage, wire: Wire) -> None:
    staged = await wire.start_with(stage, first_events(wire.recording(), 3, drop=False))
    assert await collect(staged.engine, req()) == list(wire.tokens[:3])


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
async def test_an_empty_body_is_a_retriable_reset(stage: Stage, wire: Wire) -> None:
    staged = await wire.start(stage, "empty")
    got, err = await collect_until_error(staged.engine, req())
    check(got, err, _expect(RESET, True, 1000, "ended the stream without"), wire.name)


NOT_OBJECTS = (b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: "text"\n\n', b"data: null\n\n")
MALFORMED = [
    pytest.param(w, body, id=f"{w.name}:{body[5:40].decode().strip()}")
    for w in WIRES
    for body in NOT_OBJECTS + w.malformed
]


@pytest.mark.parametrize(("wire", "event"), MALFORMED)
async def test_a_malformed_event_is_an_engine_error_after_the_tokens_before_it(
    stage: Stage, wire: Wire, event: bytes
) -> None:
    stream = wire.recording()
    first = stream.events()[0]
    staged = await wire.start_with(stage, replay(replace(stream, body=first + event)))
    got, err = await collect_until_error(staged.engine, req())
    check(got, err, _expect(ENGINE, False, None, "", *wire.tokens[:1]), wire.name)


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
async def test_used_before_start_is_a_programming_error(wire: Wire) -> None:
    engine = wire.make("http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        await engine.health()


# -- the tables and the recordings agree with the cases ------------------------------------------


def _table_rows(module: ModuleType) -> list[str]:
    """The first column of each row of the error table in ``module``'s docstring."""
    doc = module.__doc__ or ""
    block = doc[doc.index("Error mapping") :]
    rules = [m.start() for m in re.finditer(r"^=+  ", block, re.MULTILINE)]
    body = block[rules[1] : rules[2]].splitlines()[1:]
    return [re.split(r"\s{2,}", line.strip())[0] for line in body if line.strip()]


SCENARIOS_OF_ANY_WIRE = {"refused", DROPPED, "cut", "empty", "malformed"}


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
def test_every_row_of_the_docstring_table_is_exercised(wire: Wire) -> None:
    assert _table_rows(wire.module) == list(wire.table), "the table and the cases list different rows"
    here = Path(__file__).parent
    for row, scenarios in wire.table.items():
        for scenario in scenarios:
            if "::" in scenario:  # a test of the adapter's own module
                module, test = scenario.split("::")
                assert f"def {test}(" in (here / module).read_text(), (row, scenario)
            elif ":" in scenario:  # a row another subject meets
                name, row_name = scenario.split(":")
                assert row_name in next(s for s in SUBJECTS if s.name == name).rows, (row, scenario)
            else:
                assert scenario in SCENARIOS_OF_ANY_WIRE or scenario in wire.rows, (row, scenario)


@pytest.mark.parametrize("wire", WIRES, ids=_ids(WIRES))
def test_every_recording_is_replayed_and_documented(wire: Wire) -> None:
    recorded = {p.stem for p in (RECORDED / wire.name).glob("*.http")}
    assert recorded == {STREAM, *wire.rows}
    readme = (RECORDED / "README.md").read_text()
    for name in recorded:
        recording = wire.recording(name)
        assert recording.source, f"{wire.name}/{name}.http says nothing about where it comes from"
        assert f"`{wire.name}/{name}.http`" in readme, f"{wire.name}/{name}.http is missing from recorded/README.md"
    assert all(e.endswith(b"\n\n") for e in wire.recording().events()), "stream.http ends with a complete event"
