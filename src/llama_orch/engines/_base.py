"""The engine adapter interface: one small async seam between the scheduler and an engine.

An adapter streams a completion as an async iterator of token *batches*: every token already
available is yielded together, so the relay can write them in one frame write. Closing the
iterator (``aclose()``, or leaving an ``async for`` early) cancels generation at the engine.
Every failure leaves an adapter as an :class:`~llama_orch.errors.EngineError` with a code from
the taxonomy, raised ``from`` the engine's own exception.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from types import TracebackType

from llama_orch_api import Determinism


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """What an engine needs to decode one task."""

    task_id: str
    prompt: str
    max_tokens: int
    seed: int | None = None
    determinism: Determinism = Determinism.best_effort
    sampler_profile: str = "llorch/sampler@1"
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine says about itself."""

    engine: str
    version: str
    ctx_max: int
    slots: int
    determinism: frozenset[Determinism] = field(default_factory=frozenset)


class Engine(abc.ABC):
    """One engine replica. Use as an async context manager, or call :meth:`start`/:meth:`aclose`."""

    name: str = "engine"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or processes; the default has nothing to open."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release everything :meth:`start` opened."""

    @abc.abstractmethod
    async def health(self) -> bool:
        """True when the engine can take work now."""

    @abc.abstractmethod
    def describe(self) -> EngineInfo:
        """Static facts: version, context size, slots, determinism guarantees."""

    @abc.abstractmethod
    def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        """Decode ``request``; yield batches of token texts until done."""

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
