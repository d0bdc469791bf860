"""The engine adapter interface: one small async seam between the scheduler and an engine.

An adapter streams a completion as an async iterator of token *batches*: every token already
available is yielded together, so the relay can write them in one frame write. Closing the
iterator (``aclose()``, or leaving an ``async for`` early) cancels generation at the engine.
Every failure leaves an adapter as an :class:`~llama_orch.errors.EngineError` with a code from
the taxonomy, raised ``from`` the engine's own exception.

Readiness is asked of the seam, never of a concrete type: :attr:`Engine.state` (an
:class:`EngineState`), :attr:`Engine.ready` and :attr:`Engine.last_error`, and a change hook
(:meth:`Engine.on_change`) an engine calls whenever its state changes, so the scheduler learns
that a supervised process died or came back without polling it. An engine with no life of its
own (an HTTP adapter to a server someone else runs, the in-process mock) is always ``ready``.

Workloads: a request with ``messages`` is a chat turn, rendered by the *engine's* chat template
(never by concatenating strings here); :meth:`Engine.embed` turns texts into vectors. An engine
says what it serves in :attr:`EngineInfo.workloads`; asking one for a workload it does not serve
is answered with ``WORKLOAD_UNSUPPORTED``, not silently decoded as something else.

KV reuse: ``slot`` pins the request to one engine slot (llama.cpp's ``id_slot``) and
``cache_prompt`` lets the engine reuse that slot's cached prefix, so a session's next turn only
evaluates what is new. A ``strict`` request never reuses a cache (see :mod:`llama_orch.engines.llamacpp`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Literal

from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode, Workload

ChatRole = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation, as the engine's chat template takes it."""

    role: ChatRole
    content: str


@dataclass(slots=True)
class StreamReport:
    """What an engine reported about one finished stream (``None``: it did not say).

    ``cached_tokens`` is the part of the prompt the engine did not evaluate again (a warm KV cache);
    ``finish_reason`` is ``"stop"`` (end of sequence or a stop text) or ``"length"`` (``max_tokens``).
    """

    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: Literal["stop", "length"] | None = None


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
    #: A chat turn: the engine renders these with its chat template; ``prompt`` is then only for records.
    messages: tuple[ChatMessage, ...] | None = None
    #: Texts that end generation where they appear (not included in the output).
    stop: tuple[str, ...] = ()
    #: The engine slot to decode in (llama.cpp ``id_slot``); ``None`` lets the engine choose.
    slot: int | None = None
    #: Whether the engine may reuse a cached prompt prefix; ignored (off) for ``strict`` requests.
    cache_prompt: bool = True
    #: Filled in by adapters whose engine reports counts and the finish reason, as the stream ends.
    report: StreamReport | None = field(default=None, compare=False)

    @property
    def workload(self) -> Workload:
        return Workload.chat if self.messages is not None else Workload.completion

    @property
    def reuses_cache(self) -> bool:
        """What is sent as ``cache_prompt``: asked for, and never for a strict request."""
        return self.cache_prompt and self.determinism is not Determinism.strict


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors for a list of inputs, in input order; ``prompt_tokens`` as the engine counted them."""

    vectors: list[list[float]]
    prompt_tokens: int
    model: str | None = None


COMPLETION_ONLY = frozenset({Workload.completion})
TEXT_WORKLOADS = frozenset({Workload.completion, Workload.chat})


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine says about itself."""

    engine: str
    version: str
    ctx_max: int
    slots: int
    determinism: frozenset[Determinism] = field(default_factory=frozenset)
    workloads: frozenset[Workload] = COMPLETION_ONLY


class EngineState(StrEnum):
    """Where an engine replica is in its life; only ``ready`` takes tasks."""

    starting = "starting"
    ready = "ready"
    restarting = "restarting"
    """It failed and is being brought back (a supervised process restarting with backoff)."""
    failed = "failed"
    """It failed and nothing brings it back by itself."""
    stopped = "stopped"


ChangeHook = Callable[["Engine"], None]


class Engine(abc.ABC):
    """One engine replica. Use as an async context manager, or call :meth:`start`/:meth:`aclose`."""

    name: str = "engine"
    exclusive_strict: bool = False
    """True when a ``strict`` task must run alone on this replica (its numerics depend on what else
    is in the batch, as with llama.cpp's continuous batching); the dispatcher then keeps other
    tasks off it while one runs, and starts one only on an idle replica."""
    _change_hook: ChangeHook | None = None

    @property
    def pinnable_slots(self) -> int | None:
        """How many engine slots requests may be pinned to (``EngineRequest.slot`` in
        ``range(pinnable_slots)``), for KV reuse across a session's turns; ``None`` when the engine
        has no slots to pin or their number is not known for sure."""
        return None

    @property
    def state(self) -> EngineState:
        """The engine's state; engines with no life of their own are always ready."""
        return EngineState.ready

    @property
    def ready(self) -> bool:
        """Whether the replica may take a task now."""
        return self.state is EngineState.ready

    @property
    def last_error(self) -> str | None:
        """Why the engine is not ready (or last failed), when it knows."""
        return None

    def on_change(self, hook: ChangeHook | None) -> None:
        """Call ``hook(engine)`` whenever :attr:`state` changes (one hook; None removes it)."""
        self._change_hook = hook

    def notify_change(self) -> None:
        """For implementations: tell the hook that :attr:`state` changed."""
        if self._change_hook is not None:
            self._change_hook(self)

    def use_model_file(self, path: Path | None) -> None:  # noqa: B027 - optional hook
        """Called before :meth:`start` with the pool's provisioned local model file; engines that
        load no file themselves (HTTP adapters, the mock) ignore it."""

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

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        """One vector per input. Engines that serve no embeddings answer ``WORKLOAD_UNSUPPORTED``."""
        raise self.unsupported(Workload.embedding)

    def unsupported(self, workload: Workload) -> EngineError:
        """The error for a workload this engine (as configured) does not serve."""
        info = self.describe()
        return EngineError(
            ErrorCode.WORKLOAD_UNSUPPORTED,
            f"{info.engine} does not serve {workload.value} here (it serves: "
            f"{', '.join(sorted(w.value for w in info.workloads)) or 'nothing'})",
            engine=info.engine,
        )

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
