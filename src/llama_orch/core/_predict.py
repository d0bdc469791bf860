"""Start-time prediction (OC-CLI-2005, 3202).

A task's expected service time is ``first_token_ms + expected_tokens * ms_per_token``, where the
per-pool estimates are learnt from finished tasks (exponentially weighted) and seeded from the
pool's configuration. ``expected_tokens`` is ``max_tokens`` scaled by the observed fill ratio
(how much of ``max_tokens`` tasks actually use).

The predicted start of a new task is found by replaying the queue ahead of it onto the slots: each
slot is free after its running task's remaining time; each queued task takes the slot that frees
first. That replay is exact for FIFO dispatch when the estimates hold. To keep admission O(1), only
the first ``exact_limit`` queued tasks are replayed; the rest are added as fluid work spread evenly
over the slots.

:func:`predict_new` does this for a new task from a :class:`QueueLoad` (a snapshot of one pool's
slots and queue); :func:`retry_after_ms` and :func:`backoff_ms` turn the same snapshot into the
advice a refused or admitted client gets.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from llama_orch_api import Priority

_C = TypeVar("_C", bound=type)


def slot_init(cls: _C) -> _C:
    """Give a frozen ``slots`` dataclass an ``__init__`` that stores each field through its slot's
    descriptor. The generated one calls ``object.__setattr__`` per field (a frozen class refuses
    plain assignment), about twice the cost; these are built several times per admission. Same
    signature and defaults; the class stays frozen (assignment still raises), hashable, equal by value."""
    fields = dataclasses.fields(cls)
    namespace: dict[str, Any] = {}
    params, body = [], []
    for i, f in enumerate(fields):
        if f.default_factory is not dataclasses.MISSING or not f.init:
            raise TypeError(f"slot_init: {cls.__name__}.{f.name} needs the generated __init__")
        namespace[f"_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
        body.append(f"    _set{i}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, namespace)  # built from the dataclass's own field names, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    type.__setattr__(cls, "__init__", init)
    return cls


EXACT_PREDICTION_LIMIT = 64
"""Queued tasks replayed exactly when predicting a start; the rest count as fluid work."""

TYPICAL_MAX_TOKENS = 128
"""The task size assumed when nothing is known (empty queue, no replica to look at)."""


@dataclass(slots=True)
class ServiceEstimator:
    """Learns first-token latency, per-token time and fill ratio from finished tasks."""

    first_token_ms: float
    ms_per_token: float
    fill_ratio: float = 1.0
    alpha: float = 0.2
    observations: int = field(default=0)

    def expected_tokens(self, max_tokens: int) -> float:
        return max(1.0, max_tokens * self.fill_ratio)

    def service_ms(self, max_tokens: int) -> float:
        return self.first_token_ms + self.expected_tokens(max_tokens) * self.ms_per_token

    def remaining_ms(self, max_tokens: int, tokens_out: int, elapsed_ms: float) -> float:
        """Expected time left for a running task."""
        if tokens_out == 0:
            return max(0.0, self.service_ms(max_tokens) - elapsed_ms)
        return max(0.0, (self.expected_tokens(max_tokens) - tokens_out) * self.ms_per_token)

    def observe(self, first_token_ms: float, decode_ms: float, tokens_out: int, max_tokens: int) -> None:
        """Fold one finished task into the estimates."""
        a = self.alpha if self.observations >= 3 else 0.5
        self.first_token_ms += a * (first_token_ms - self.first_token_ms)
        if tokens_out > 1:
            per_token = decode_ms / (tokens_out - 1)
            self.ms_per_token += a * (per_token - self.ms_per_token)
        self.fill_ratio += a * (min(1.0, tokens_out / max_tokens) - self.fill_ratio)
        self.observations += 1


def predict_start_ms(
    slot_free_in_ms: Iterable[float],
    ahead_service_ms: Iterable[float],
    *,
    extra_ahead_ms: float = 0.0,
) -> float:
    """Milliseconds until a new task starts.

    ``slot_free_in_ms``: for every slot, ms until it is free (0 for an idle slot).
    ``ahead_service_ms``: expected service time of each queued task ahead, in dispatch order.
    ``extra_ahead_ms``: total service time of further queued tasks not listed (fluid part).
    """
    heap = list(slot_free_in_ms)
    if not heap:
        raise ValueError("a pool with no slots cannot start anything")
    if len(heap) == 1:  # one slot: the replay is a running sum (the same additions, in order)
        free = heap[0]
        for service in ahead_service_ms:
            free += service
        return free + extra_ahead_ms if extra_ahead_ms > 0 else free
    heapq.heapify(heap)
    for service in ahead_service_ms:
        heapq.heapreplace(heap, heap[0] + service)
    if extra_ahead_ms > 0:
        return heap[0] + extra_ahead_ms / len(heap)
    return heap[0]


@slot_init
@dataclass(frozen=True, slots=True)
class RunningTask:
    """A task decoding on a ready replica, as prediction sees it."""

    started_at: float
    """Monotonic seconds."""
    max_tokens: int
    tokens_out: int


@slot_init
@dataclass(frozen=True, slots=True)
class QueueLoad:
    """One pool's slots and queue at a moment: everything start-time prediction reads.

    ``head_interactive`` / ``head_batch`` are the ``max_tokens`` of the first queued tasks of each
    class in dispatch order; the pool lists at least :func:`head_needed` of each (fewer only when
    the class has fewer).
    """

    running: tuple[RunningTask, ...]
    free_slots: int
    """Idle slots on ready replicas."""
    queued_interactive: int
    queued_batch: int
    tokens_interactive: int
    """Sum of ``max_tokens`` over the queued interactive tasks."""
    tokens_batch: int
    head_interactive: tuple[int, ...]
    head_batch: tuple[int, ...]
    total_slots: int
    """All slots, ready or not (for retry advice)."""
    capacity: int
    """The queue's capacity."""

    @property
    def queued(self) -> int:
        return self.queued_interactive + self.queued_batch


def head_needed(ready_slots: int) -> int:
    """How many queued tasks of each class :func:`predict_new` may replay exactly."""
    return min(EXACT_PREDICTION_LIMIT, 2 * max(1, ready_slots))


def predict_new(load: QueueLoad, priority: Priority, est: ServiceEstimator, now: float) -> float:
    """Milliseconds until a task of ``priority`` submitted at ``now`` would start."""
    free_in: list[float] = []
    for r in load.running:  # a loop, not a comprehension: no function call (admission's hot path)
        free_in.append(est.remaining_ms(r.max_tokens, r.tokens_out, (now - r.started_at) * 1000))
    if load.free_slots:
        free_in.extend([0.0] * load.free_slots)
    if not free_in:  # no replica can take work now: assume one comes back within a typical task
        free_in = [est.service_ms(TYPICAL_MAX_TOKENS)]
    interactive = priority is Priority.interactive
    ahead_count = load.queued_interactive if interactive else load.queued
    if ahead_count == 0:
        return min(free_in)
    # Replay exactly a few rounds of the slots; beyond that, queued work is fluid.
    exact = min(ahead_count, EXACT_PREDICTION_LIMIT, 2 * len(free_in))
    head = (
        load.head_interactive
        if interactive or len(load.head_interactive) >= exact
        else (load.head_interactive + load.head_batch)
    )
    head = head[:exact]
    first, fill, per_token = est.first_token_ms, est.fill_ratio, est.ms_per_token
    services: list[float] = []
    for m in head:
        services.append(first + (m * fill if m * fill > 1.0 else 1.0) * per_token)
    extra = 0.0
    if ahead_count > exact:
        tokens = load.tokens_interactive if interactive else load.tokens_interactive + load.tokens_batch
        extra = (ahead_count - exact) * first + fill * (tokens - sum(head)) * per_token
    return predict_start_ms(free_in, services, extra_ahead_ms=extra)


def retry_after_ms(load: QueueLoad, est: ServiceEstimator) -> int:
    """When a queue place is likely to free: the time for one slot to finish a typical task
    (the task at the head of the queue, when there is one)."""
    head = load.head_interactive or load.head_batch
    typical = est.service_ms(head[0] if head else TYPICAL_MAX_TOKENS)
    return max(1, int(typical / max(1, load.total_slots)))


def backoff_ms(queued: int, capacity: int, retry_after: int) -> int:
    """Advice for a client's next submission (``X-Backoff-Ms``): 0 until the queue is half full,
    then growing with the fill to twice ``retry_after`` when full."""
    fill = queued / capacity
    return 0 if fill < 0.5 else int(retry_after * fill * 2)
