"""MockEngine: a deterministic, timed, fault-injecting engine for tests, benchmarks and demos.

Output is a pure function of (seed, prompt, sampler profile): the same inputs always give the same
tokens, and it always produces exactly ``max_tokens`` tokens (so start-time prediction can be
checked exactly). Timing follows the settings: the first token after ``first_token_ms`` (plus
``faults.slow_start_ms``), then ``tokens_per_s``.

Faults fire for every task, or only for tasks whose prompt contains ``faults.trigger``:

- ``error_after_tokens``: the engine reports an error (``ENGINE_ERROR``) after N tokens;
- ``reset_after_tokens``: the connection to the engine drops (``WORKER_RESET``) after N tokens;
- ``hang_after_tokens``: the engine stops sending after N tokens and never finishes;
- ``slow_start_ms``: extra delay before the first token.

Every workload is served: a chat request's tokens are a pure function of its messages (the mock's
"template" is the messages themselves, so changing any turn changes the output); :meth:`MockEngine.embed`
gives each text a unit vector of ``embedding_dim`` numbers derived from its hash. The mock keeps one
cached prompt per slot like llama.cpp does, so a request pinned to a slot (``slot``) with
``cache_prompt`` reports how many of its prompt tokens (whitespace-separated words) were cached.

A custom ``handler`` may replace the token generator, like httpx's ``MockTransport``::

    engine = MockEngine(MockSettings(tokens_per_s=None), handler=lambda req: ["hello", " world"])

A **script** (``mock.script: PATH``) makes the mock a scripted engine that a config file alone can
set up, e.g. for an orchestratord subprocess answering an agent loop with prepared outputs: a YAML
or JSON file of rules, tried in order; the first rule whose every condition holds answers::

    rules:
      - role: coder                      # the prompt has a line "# Role: coder"
        match: ["Work item: code:STR-0001", "was rejected"]   # every substring must appear
        answer: "the text"                # or a list of answers, used in turn (the last repeats)
      - regex: "^# Role: test-writer"    # re.search, multi-line
        answer: [first, second]
    default: null                         # no rule matched: this text, or null for the usual tokens

An answer is streamed as its words (each with the whitespace before it), cut at ``max_tokens``;
turns are counted per rule and per engine replica. The file is read and checked when the config is
loaded (a bad file is a config error naming ``mock.script`` and what is wrong in it), and again
when the engine starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import struct
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llama_orch.engines._base import Embeddings, Engine, EngineInfo, EngineRequest
from llama_orch.engines._http import DEFAULT_RETRY_AFTER_MS
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode, Workload

MOCK_VERSION = "mock-1"

_VOCAB = (
    " the", " a", " model", " token", " stream", " queue", " slot", " pool", " test", " code",
    " spec", " contract", " is", " and", " of", " to", " in", " that", " it", " for", " with",
    " on", " GPU", " fast", " real", " honest", ".", ",", "\n", " def", " return", " if",
)  # fmt: skip


class MockFaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: str | None = Field(
        default=None, description="Only prompts containing this text fault; every task when null."
    )
    error_after_tokens: int | None = Field(default=None, ge=0)
    reset_after_tokens: int | None = Field(default=None, ge=0)
    hang_after_tokens: int | None = Field(default=None, ge=0)
    slow_start_ms: float = Field(default=0.0, ge=0)


class MockScriptRule(BaseModel):
    """One rule of a mock script: every condition given must hold for the rule to answer."""

    model_config = ConfigDict(extra="forbid")

    match: str | list[str] | None = Field(default=None, description="Substrings the prompt must all contain.")
    regex: str | None = Field(default=None, description="A pattern the prompt must match (re.search, multi-line).")
    role: str | None = Field(default=None, description="The prompt must have the line '# Role: <role>'.")
    answer: str | list[str] = Field(description="The answer, or answers used in turn (the last one repeats).")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.MULTILINE)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("answer")
    @classmethod
    def _some_answer(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one answer")
        return value

    def matches(self, prompt: str) -> bool:
        needles = [self.match] if isinstance(self.match, str) else (self.match or [])
        if any(n not in prompt for n in needles):
            return False
        if self.regex is not None and re.search(self.regex, prompt, re.MULTILINE) is None:
            return False
        return self.role is None or re.search(rf"^# Role: {re.escape(self.role)}\s*$", prompt, re.MULTILINE) is not None


class MockScript(BaseModel):
    """The rules of a scripted mock engine (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[MockScriptRule] = Field(default_factory=list)
    default: str | None = None


def load_mock_script(path: str | Path) -> MockScript:
    """Read and check a mock script; ``ValueError`` says what is wrong, and where in the file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{source} is not valid {'JSON' if source.suffix == '.json' else 'YAML'}: {exc}") from None
    try:
        return MockScript.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{source}: {problems}") from None


def answer_tokens(text: str) -> list[str]:
    """An answer as tokens: each word with the whitespace before it (trailing whitespace kept last)."""
    return re.findall(r"\s*\S+|\s+", text)


class MockSettings(BaseModel):
    """Per-pool settings of the mock engine."""

    model_config = ConfigDict(extra="forbid")

    tokens_per_s: float | None = Field(
        default=200.0, gt=0, description="Per-stream decode rate; null decodes as fast as possible."
    )
    first_token_ms: float = Field(default=20.0, ge=0)
    slots: int = Field(default=4, ge=1, le=4096)
    ctx_max: int = Field(default=8192, ge=16)
    stamp_tokens: bool = Field(
        default=False,
        description="Token text is the emission time (time.time_ns) plus a space: for latency benchmarks.",
    )
    embedding_dim: int = Field(default=16, ge=1, le=4096, description="Length of the mock's embedding vectors.")
    faults: MockFaults = Field(default_factory=MockFaults)
    script: str | None = Field(
        default=None,
        description="A YAML/JSON file of rules (prompt substring/regex/role -> answer text) that makes this a "
        "scripted engine; absolute, or relative to orchestratord's working directory.",
    )

    @field_validator("script")
    @classmethod
    def _script_loads(cls, value: str | None) -> str | None:
        if value is not None:
            load_mock_script(value)
        return value


def mock_prompt(request: EngineRequest) -> str:
    """What the mock decodes: the prompt, or for a chat turn the messages, one ``role: content`` block each."""
    if request.messages is None:
        return request.prompt
    return "".join(f"<{m.role}>{m.content}</{m.role}>\n" for m in request.messages)


def mock_tokens(request: EngineRequest) -> list[str]:
    """The deterministic output for ``request``."""
    material = f"{request.seed}\x00{request.sampler_profile}\x00{mock_prompt(request)}"
    if request.seed is None:
        material += f"\x00{request.task_id}"
    rng = random.Random(hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest())
    return [_VOCAB[rng.randrange(len(_VOCAB))] for _ in range(request.max_tokens)]


class ScriptedAnswers:
    """A handler that answers from a :class:`MockScript` (turns counted per rule)."""

    def __init__(self, script: MockScript) -> None:
        self.script = script
        self._turns = [0] * len(script.rules)

    def __call__(self, request: EngineRequest) -> list[str]:
        for i, rule in enumerate(self.script.rules):
            if rule.matches(request.prompt):
                answers = [rule.answer] if isinstance(rule.answer, str) else rule.answer
                text = answers[min(self._turns[i], len(answers) - 1)]
                self._turns[i] += 1
                return answer_tokens(text)[: request.max_tokens]
        if self.script.default is not None:
            return answer_tokens(self.script.default)[: request.max_tokens]
        return mock_tokens(request)


def mock_embedding(text: str, dim: int = 16) -> list[float]:
    """The mock's unit vector for ``text``: the same text always gives the same vector."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dim:
        digest = hashlib.sha256(f"{counter}\x00{text}".encode("utf-8", "surrogatepass")).digest()
        raw.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        counter += 1
    vector = raw[:dim]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _common_words(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class MockEngine(Engine):
    """An in-process engine replica that honours :class:`MockSettings`."""

    name = "mock"

    def __init__(
        self,
        settings: MockSettings | None = None,
        handler: Callable[[EngineRequest], Sequence[str]] | None = None,
    ) -> None:
        self.settings = settings or MockSettings()
        if handler is None and self.settings.script is not None:
            handler = ScriptedAnswers(load_mock_script(self.settings.script))
        self._handler = handler or mock_tokens
        self.active = 0
        self.started_streams = 0
        # slot -> the prompt words its KV cache holds (what llama.cpp keeps per slot).
        self._slot_cache: dict[int, list[str]] = {}

    async def health(self) -> bool:
        return True

    @property
    def pinnable_slots(self) -> int | None:
        return self.settings.slots

    def describe(self) -> EngineInfo:
        return EngineInfo(
            engine="mock",
            version=MOCK_VERSION,
            ctx_max=self.settings.ctx_max,
            slots=self.settings.slots,
            determinism=frozenset({Determinism.strict, Determinism.best_effort}),
            workloads=frozenset(Workload),
        )

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        dim = self.settings.embedding_dim
        return Embeddings([mock_embedding(t, dim) for t in inputs], sum(len(t.split()) for t in inputs), "mock")

    def _account(self, request: EngineRequest, produced: int) -> None:
        """Fill in ``request.report`` as llama.cpp would: prompt words, those its slot had cached."""
        words = mock_prompt(request).split()
        cached = 0
        if request.slot is not None:
            if request.reuses_cache:
                cached = _common_words(self._slot_cache.get(request.slot, []), words)
            self._slot_cache[request.slot] = words
        if request.report is not None:
            request.report.prompt_tokens = len(words)
            request.report.cached_tokens = cached
            request.report.completion_tokens = produced
            request.report.finish_reason = "length"

    def _faults_apply(self, request: EngineRequest) -> bool:
        trigger = self.settings.faults.trigger
        return trigger is None or trigger in request.prompt

    async def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        s = self.settings
        faults = s.faults if self._faults_apply(request) else MockFaults()
        tokens = list(self._handler(request))
        self.active += 1
        self.started_streams += 1
        self._account(request, len(tokens))
        try:
            start = time.monotonic() + (s.first_token_ms + faults.slow_start_ms) / 1000
            interval = 0.0 if s.tokens_per_s is None else 1.0 / s.tokens_per_s
            sent = 0
            while sent < len(tokens):
                limit = _fault_limit(faults, sent)
                now = time.monotonic()
                if now < start + sent * interval:
                    await asyncio.sleep(start + sent * interval - now)
                    now = time.monotonic()
                due = len(tokens) if interval == 0 else int((now - start) / interval) + 1
                upto = min(len(tokens), max(due, sent + 1), limit)
                if upto > sent:
                    batch = tokens[sent:upto]
                    if s.stamp_tokens:
                        stamp = f"{time.time_ns()} "
                        batch = [stamp] * len(batch)
                    sent = upto
                    yield batch
                if sent == limit:
                    await _fire(faults, sent)
        finally:
            self.active -= 1


def _fault_limit(faults: MockFaults, sent: int) -> int:
    """Tokens that may be sent before the next fault fires."""
    limits = [
        n
        for n in (faults.error_after_tokens, faults.reset_after_tokens, faults.hang_after_tokens)
        if n is not None and n >= sent
    ]
    return min(limits) if limits else 1 << 62


async def _fire(faults: MockFaults, sent: int) -> None:
    if faults.error_after_tokens == sent:
        raise EngineError(
            ErrorCode.ENGINE_ERROR, f"mock engine: injected error after {sent} tokens", engine="mock", retriable=False
        )
    if faults.reset_after_tokens == sent:
        try:
            raise ConnectionResetError("mock engine: injected connection reset")
        except ConnectionResetError as exc:
            raise EngineError(
                ErrorCode.WORKER_RESET,
                f"mock engine: connection reset after {sent} tokens",
                engine="mock",
                retriable=True,
                retry_after_ms=DEFAULT_RETRY_AFTER_MS,  # what the HTTP adapters advise after a reset
            ) from exc
    if faults.hang_after_tokens == sent:
        await asyncio.Event().wait()
