"""One model call: prompt, completion through the SDK, parse, bounded retries with the error fed back.

The seam between prompt building and the SDK is :data:`CompletionFn`: :func:`sdk_completion`
makes one that submits a task with ``AsyncClient.run``; tests (and other backends) pass their own.
Every attempt is recorded with its prompt, request (seed, sampler profile) and answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from llama_orch.agents._formats import OutputFormat, OutputFormatError
from llama_orch.agents._prompts import Prompt, PromptBuilder, Role
from llama_orch.client import AsyncClient

T = TypeVar("T")

DEFAULT_SAMPLER_PROFILE = "llorch/sampler@1"
_ECHO_CHARS = 1000


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str
    max_tokens: int
    seed: int
    sampler_profile_version: str
    pool: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    task_id: str
    tokens_out: int
    finish_reason: str


CompletionFn = Callable[[CompletionRequest], Awaitable[Completion]]


def sdk_completion(client: AsyncClient, **task_fields: Any) -> CompletionFn:
    """A :data:`CompletionFn` that runs each request as a task on orchestratord (``task_fields``:
    further ``TaskRequest`` fields, e.g. ``priority="batch"`` or ``determinism="strict"``)."""

    async def complete(request: CompletionRequest) -> Completion:
        result = await client.run(
            prompt=request.prompt,
            max_tokens=request.max_tokens,
            seed=request.seed,
            sampler_profile_version=request.sampler_profile_version,
            pool=request.pool,
            session_id=request.session_id,
            **task_fields,
        )
        return Completion(result.text, result.task_id, result.end.tokens_out, result.end.finish_reason)

    return complete


@dataclass(frozen=True)
class Attempt:
    number: int
    prompt: Prompt
    request: CompletionRequest
    completion: Completion
    error: str | None
    """Why the answer was refused; None for the accepted one."""


@dataclass(frozen=True)
class ModelResult(Generic[T]):
    value: T
    role: Role
    seed: int
    sampler_profile_version: str
    attempts: tuple[Attempt, ...]

    @property
    def completion(self) -> Completion:
        return self.attempts[-1].completion


class ModelOutputError(RuntimeError):
    """Every attempt's answer was refused; ``attempts`` has them all, with their errors."""

    def __init__(self, attempts: tuple[Attempt, ...]) -> None:
        self.attempts = attempts
        super().__init__(f"no usable answer after {len(attempts)} attempts; last error: {attempts[-1].error}")


def feedback(answer: str, error: str) -> str:
    """The retry section: what was wrong, and the start of the refused answer (said to be the start)."""
    shown = answer if len(answer) <= _ECHO_CHARS else answer[:_ECHO_CHARS]
    cut = "" if len(answer) <= _ECHO_CHARS else f" (its first {_ECHO_CHARS} of {len(answer)} characters)"
    return (
        f"It could not be used:\n\n{error}\n\nYour previous answer{cut}:\n\n{shown}\n\n"
        "Answer again, following the output format exactly."
    )


async def call_model(
    builder: PromptBuilder,
    fmt: OutputFormat[T],
    complete: CompletionFn,
    *,
    seed: int,
    sampler_profile_version: str = DEFAULT_SAMPLER_PROFILE,
    max_attempts: int = 3,
    pool: str | None = None,
    session_id: str | None = None,
) -> ModelResult[T]:
    """Ask, parse, and on a malformed answer ask again with the error, at most ``max_attempts`` times.

    Each attempt uses the same seed and sampler profile (the prompt differs by the feedback), so a
    call is reproducible on a deterministic engine. Raises :class:`ModelOutputError` when all fail.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    attempts: list[Attempt] = []
    note: str | None = None
    for number in range(1, max_attempts + 1):
        prompt = builder.build(output_format=fmt.describe(), feedback=note)
        request = CompletionRequest(
            prompt.text, builder.max_tokens, seed, sampler_profile_version, pool=pool, session_id=session_id
        )
        completion = await complete(request)
        try:
            value = fmt.parse(completion.text)
        except OutputFormatError as exc:
            attempts.append(Attempt(number, prompt, request, completion, str(exc)))
            note = feedback(completion.text, str(exc))
            continue
        attempts.append(Attempt(number, prompt, request, completion, None))
        return ModelResult(value, builder.role, seed, sampler_profile_version, tuple(attempts))
    raise ModelOutputError(tuple(attempts))
