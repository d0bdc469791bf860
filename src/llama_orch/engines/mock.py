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

A custom ``handler`` may replace the token generator, like httpx's ``MockTransport``::

    engine = MockEngine(MockSettings(tokens_per_s=None), handler=lambda req: ["hello", " world"])
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from llama_orch.engines._base import Engine, EngineInfo, EngineRequest
from llama_orch.engines._http import DEFAULT_RETRY_AFTER_MS
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode

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
    faults: MockFaults = Field(default_factory=MockFaults)


def mock_tokens(request: EngineRequest) -> list[str]:
    """The deterministic output for ``request``."""
    material = f"{request.seed}\x00{request.sampler_profile}\x00{request.prompt}"
    if request.seed is None:
        material += f"\x00{request.task_id}"
    rng = random.Random(hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest())
    return [_VOCAB[rng.randrange(len(_VOCAB))] for _ in range(request.max_tokens)]


class MockEngine(Engine):
    """An in-process engine replica that honours :class:`MockSettings`."""

    name = "mock"

    def __init__(
        self,
        settings: MockSettings | None = None,
        handler: Callable[[EngineRequest], Sequence[str]] | None = None,
    ) -> None:
        self.settings = settings or MockSettings()
        self._handler = handler or mock_tokens
        self.active = 0
        self.started_streams = 0

    async def health(self) -> bool:
        return True

    def describe(self) -> EngineInfo:
        return EngineInfo(
            engine="mock",
            version=MOCK_VERSION,
            ctx_max=self.settings.ctx_max,
            slots=self.settings.slots,
            determinism=frozenset({Determinism.strict, Determinism.best_effort}),
        )

    def _faults_apply(self, request: EngineRequest) -> bool:
        trigger = self.settings.faults.trigger
        return trigger is None or trigger in request.prompt

    async def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        s = self.settings
        faults = s.faults if self._faults_apply(request) else MockFaults()
        tokens = list(self._handler(request))
        self.active += 1
        self.started_streams += 1
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
