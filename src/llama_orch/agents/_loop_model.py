"""The loop's model calls: budgets checked before each one, tasks cancelled on the server, records kept.

**Budgets.** A run has limits of output tokens, wall time and cost. Before every call the CLI
reserves the call's worst case (``max_tokens``, and that times the pool's price per token) against
what is left, and shrinks ``max_tokens`` to fit when less is left; a call that cannot get a useful
amount waits for running calls to settle, or ends the run (:class:`BudgetSpent`). The same limits
are given to orchestratord as the budget of the run's session (``TaskRequest.budget``), which
reserves and settles on its side: so the budget holds even when the CLI dies and a new one resumes
(the resumed CLI reads what the session used). The server's wall-time budget counts decode time
summed over tasks; the CLI's counts elapsed time of the run, across resumes.

**Cancellation.** Every task gets a client-chosen id, so when the coroutine running it is
cancelled (best-of-K losers, Ctrl-C, a budget stop) the task is cancelled *on the server*
(``POST /v1/tasks/{id}/cancel``) before the cancellation goes on, even when it lands during the
admission request itself. The SDK's own ``run`` does not cancel on the server (closing a handle
gives back its concurrency place only), which is why this module streams the task itself.

**Records.** Each call leaves a prompt artifact (redacted) and a response artifact with the token
texts, seed, sampler profile, pool, replica, engine version and model: what ``llama-orch replay``
needs to re-issue it and compare token by token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from llama_orch.agents._artifacts_client import AgentArtifacts
from llama_orch.agents._modelio import Completion, CompletionFn, CompletionRequest
from llama_orch.agents._redact import redact_secrets
from llama_orch.client import APIError, AsyncClient, BudgetExceededError, LlamaOrchError, NotFoundError
from llama_orch_api import BudgetSpec, Capabilities, EndEvent, StartedEvent, TokenEvent

__all__ = ["BudgetSpent", "CallContext", "LoopModel", "RunBudget"]

MIN_USEFUL_TOKENS = 32
"""A call is not worth making with fewer output tokens than this (or than its asked-for amount)."""


class BudgetSpent(Exception):
    """The run's budget cannot pay for another call; ``dimension``: tokens, time, cost or server."""

    def __init__(self, dimension: str, message: str) -> None:
        super().__init__(message)
        self.dimension = dimension
        self.message = message


@dataclass
class RunBudget:
    """The run's limits and what was used (across resumes: ``*_before`` come from the last segment)."""

    tokens_limit: int | None = None
    time_limit_s: float | None = None
    cost_limit: float | None = None
    tokens_used: int = 0
    cost_used: float = 0.0
    elapsed_before_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    tokens_reserved: int = 0
    cost_reserved: float = 0.0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (time.monotonic() - self.started)

    def tokens_left(self) -> int | None:
        return None if self.tokens_limit is None else max(0, self.tokens_limit - self.tokens_used)

    def cost_left(self) -> float | None:
        return None if self.cost_limit is None else max(0.0, self.cost_limit - self.cost_used)

    def time_left_s(self) -> float | None:
        return None if self.time_limit_s is None else max(0.0, self.time_limit_s - self.elapsed_s())

    def check_time(self) -> None:
        if self.time_limit_s is not None and self.elapsed_s() >= self.time_limit_s:
            raise BudgetSpent("time", f"the time budget of {self.time_limit_s:g} s is spent")

    def _grant(self, wanted: int, price: float) -> int:
        """Tokens a call may have now (0: none)."""
        grant = wanted
        if self.tokens_limit is not None:
            grant = min(grant, self.tokens_limit - self.tokens_used - self.tokens_reserved)
        if self.cost_limit is not None and price > 0:
            grant = min(grant, int((self.cost_limit - self.cost_used - self.cost_reserved) / price + 1e-9))
        return max(0, grant)

    async def reserve(self, wanted: int, price: float) -> int:
        """Reserve a call's worst case; the ``max_tokens`` granted (maybe fewer than ``wanted``)."""
        floor = min(wanted, MIN_USEFUL_TOKENS)
        async with self._changed:
            while True:
                self.check_time()
                grant = self._grant(wanted, price)
                if grant >= floor:
                    self.tokens_reserved += grant
                    self.cost_reserved += grant * price
                    return grant
                if self.tokens_reserved == 0:
                    dimension = "tokens" if self._grant(wanted, 0.0) < floor else "cost"
                    left = self.tokens_left() if dimension == "tokens" else self.cost_left()
                    raise BudgetSpent(dimension, f"the {dimension} budget is spent ({left:g} left, a call needs "
                                                 f"at least {floor} tokens)")  # fmt: skip
                await self._changed.wait()  # running calls will settle and may leave enough

    async def settle(self, reserved: int, used: int, price: float) -> None:
        async with self._changed:
            self.tokens_reserved -= reserved
            self.cost_reserved = max(0.0, self.cost_reserved - reserved * price)
            self.tokens_used += min(used, reserved)
            self.cost_used += min(used, reserved) * price
            self._changed.notify_all()

    def server_spec(self) -> BudgetSpec | None:
        """The session budget for orchestratord: what is left (a session made anew starts at zero)."""
        tokens = self.tokens_left()
        cost = self.cost_left()
        wall = self.time_left_s()
        if tokens is None and cost is None and wall is None:
            return None
        return BudgetSpec(
            tokens=max(1, tokens) if tokens is not None else None,
            cost=cost,
            # Decode time summed over concurrent tasks runs faster than the clock: the CLI enforces
            # elapsed time itself; the server's bound is a backstop at 64x (agents at once).
            wall_ms=max(1, int(wall * 1000 * 64)) if wall is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens_limit": self.tokens_limit,
            "tokens_used": self.tokens_used,
            "tokens_left": self.tokens_left(),
            "cost_limit": self.cost_limit,
            "cost_used": round(self.cost_used, 9),
            "cost_left": self.cost_left(),
            "time_limit_s": self.time_limit_s,
            "elapsed_s": round(self.elapsed_s(), 3),
            "time_left_s": None if self.time_limit_s is None else round(self.time_left_s() or 0.0, 3),
        }


@dataclass(frozen=True)
class CallContext:
    """Who is calling, for what: fields of the task and of its records."""

    agent_id: str
    item_id: str
    role: str
    parent_artifact: str | None
    priority: str = "batch"
    pool: str | None = None
    model_ref: str | None = None
    prefix: str = ""
    """The start of the answer the prompt ends with (a completion model continues it)."""
    cut: Callable[[str], int | None] | None = None
    """Where the generated text is complete (a client-side stop): the rest is not waited for."""
    close: str = ""
    """Appended after a cut (e.g. the closing marker of the edit block the prefix opened)."""


Recorder = Callable[..., None]
"""``(event, **fields)``: the run's event log."""


class LoopModel:
    """Makes the run's model calls (one :data:`CompletionFn` per agent call, see :meth:`completion`)."""

    def __init__(
        self,
        client: AsyncClient,
        artifacts: AgentArtifacts,
        budget: RunBudget,
        capabilities: Capabilities,
        *,
        run_id: str,
        session_id: str,
        record: Recorder,
        determinism: str = "best_effort",
        on_tokens: Callable[[str, int], None] | None = None,
    ) -> None:
        self.client = client
        self.artifacts = artifacts
        self.budget = budget
        self.capabilities = capabilities
        self.run_id = run_id
        self.session_id = session_id
        self.determinism = determinism
        self._record = record
        self._on_tokens = on_tokens
        self._seq = 0
        self.calls = 0
        self.in_flight: set[str] = set()
        self.call_seconds = 0.0
        """Time spent in model calls (admission to the last token), all agents together."""
        self.artifacts_of: dict[str, tuple[str, str]] = {}
        """task id -> (prompt artifact, response artifact)."""

    def price(self, pool: str | None) -> float:
        prices = [p.price_per_token for p in self.capabilities.pools if pool is None or p.id == pool]
        return max(prices, default=0.0)

    def _pool_facts(self, pool: str) -> dict[str, Any]:
        for p in self.capabilities.pools:
            if p.id == pool:
                return {"engine": p.engine, "engine_version": p.engine_version, "model_ref": p.model_ref}
        return {}

    def completion(self, ctx: CallContext) -> CompletionFn:
        """A :data:`CompletionFn` for one agent's model call (each attempt is one task)."""

        async def complete(request: CompletionRequest) -> Completion:
            return await self._complete(request, ctx)

        return complete

    async def _complete(self, request: CompletionRequest, ctx: CallContext) -> Completion:
        price = self.price(ctx.pool)
        granted = await self.budget.reserve(request.max_tokens, price)
        self._seq += 1
        task_id = f"{ctx.agent_id}-c{self._seq}"
        redacted, hidden = redact_secrets(request.prompt)
        prompt_art = await self.artifacts.put(
            "trace",
            {
                "prompt": redacted, "redactions": hidden, "role": ctx.role, "model": ctx.model_ref,
                "seed": request.seed, "sampler_profile_version": request.sampler_profile_version,
                "max_tokens": granted, "pool": ctx.pool, "priority": ctx.priority,
                "determinism": self.determinism, "task_id": task_id, "run_id": self.run_id, "item": ctx.item_id,
            },
            parent=ctx.parent_artifact,
            tags=["agent:prompt", f"role:{ctx.role}", f"run:{self.run_id}", f"item:{ctx.item_id}"],
            task_id=task_id,
        )  # fmt: skip
        self._record("call-started", agent=ctx.agent_id, item=ctx.item_id, task_id=task_id, max_tokens=granted,
                     seed=request.seed, prompt_artifact=prompt_art.id)  # fmt: skip
        tokens: list[str] = []
        cut_at: int | None = None
        end: EndEvent | None = None
        started: StartedEvent | None = None
        pool = ctx.pool
        self.in_flight.add(task_id)
        self.calls += 1
        began = time.monotonic()
        try:
            fields: dict[str, Any] = {
                "task_id": task_id, "prompt": request.prompt, "max_tokens": granted, "seed": request.seed,
                "sampler_profile_version": request.sampler_profile_version, "session_id": self.session_id,
                "priority": ctx.priority, "determinism": self.determinism,
            }  # fmt: skip
            if ctx.pool:
                fields["pool"] = ctx.pool
            if ctx.model_ref:
                fields["model_ref"] = ctx.model_ref
            if (spec := self.budget.server_spec()) is not None:
                fields["budget"] = spec
            try:
                async with await self.client.submit(**fields) as task:
                    pool = task.admission.pool
                    async for event in task.astream():
                        data = event.data
                        if isinstance(data, TokenEvent):
                            tokens.append(data.t)
                            if ctx.cut is not None and (at := ctx.cut("".join(tokens))) is not None:
                                cut_at = at
                                break
                        elif isinstance(data, StartedEvent):
                            started = data
                        elif isinstance(data, EndEvent):
                            end = data
                    if cut_at is not None:
                        # The answer is complete: stop the engine rather than wait for max_tokens.
                        await self._cancel_on_server(task_id)
                        end = EndEvent(tokens_out=len(tokens), decode_time_ms=0, finish_reason="stop")
            except BudgetExceededError as exc:
                self._record("call-failed", task_id=task_id, item=ctx.item_id, code=str(exc.code), message=exc.message)
                raise BudgetSpent("server", f"orchestratord refused the call: {exc.message}") from exc
            except asyncio.CancelledError:
                await self._cancel_on_server(task_id)
                raise
            except LlamaOrchError as exc:  # the task ended with an error event, the backend refused it, or is gone
                code = exc.code if isinstance(exc, APIError) else type(exc).__name__
                self._record("call-failed", task_id=task_id, item=ctx.item_id, code=code, message=str(exc)[:500])
                raise
        finally:
            self.in_flight.discard(task_id)
            self.call_seconds += time.monotonic() - began
            used = end.tokens_out if end is not None else len(tokens)
            await self.budget.settle(granted, used, price)
            if self._on_tokens is not None:
                self._on_tokens(ctx.agent_id, used)
        generated = "".join(tokens)
        assert end is not None  # the stream ends with `end` or raises (or was cut)
        # Cut or not (it ran to max_tokens), the block the prefix opened is closed: the answer is then
        # judged on its content, and the feedback says what is wrong in it.
        text = ctx.prefix + (generated if cut_at is None else generated[:cut_at]) + ctx.close
        shown, hidden_out = redact_secrets(generated)
        recorded: list[JsonValue] | None = list(tokens) if not hidden_out else None
        response_art = await self.artifacts.put(
            "trace",
            {
                "response": shown, "redactions": hidden_out, "tokens": recorded,
                "tokens_out": end.tokens_out, "finish_reason": end.finish_reason, "decode_time_ms": end.decode_time_ms,
                "prefix": ctx.prefix or None, "cut_at": cut_at,
                "pool": pool, "replica": started.replica if started else None, "seed": request.seed,
                "sampler_profile_version": request.sampler_profile_version, "max_tokens": granted,
                **self._pool_facts(pool or ""),
            },
            parent=prompt_art.id,
            tags=["agent:response", f"role:{ctx.role}", f"run:{self.run_id}", f"item:{ctx.item_id}"],
            task_id=task_id,
        )  # fmt: skip
        self._record("call-finished", agent=ctx.agent_id, item=ctx.item_id, task_id=task_id,
                     tokens_out=end.tokens_out, response_artifact=response_art.id)  # fmt: skip
        self.artifacts_of[task_id] = (prompt_art.id, response_art.id)
        return Completion(text, task_id, end.tokens_out, end.finish_reason)

    async def _cancel_on_server(self, task_id: str) -> None:
        with contextlib.suppress(LlamaOrchError, NotFoundError, TimeoutError):
            await asyncio.wait_for(self.client.cancel(task_id, timeout=5), 6)
        self._record("call-cancelled", task_id=task_id)

    async def cancel_orphans(self, task_ids: list[str]) -> int:
        """Cancel tasks a previous CLI started and never saw finish (after a crash); how many were known."""
        cancelled = 0
        for task_id in task_ids:
            try:
                await self.client.cancel(task_id, timeout=5)
                cancelled += 1
            except (LlamaOrchError, NotFoundError):
                continue
        return cancelled
