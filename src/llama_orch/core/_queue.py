"""A bounded two-class priority queue with a full-queue policy.

``interactive`` entries are always taken before ``batch`` entries; within a class the order is
first-in, first-out. The capacity bounds both classes together.

Full-queue policies:

``reject``
    the incoming entry is refused; nothing already queued is touched.
``drop-lru``
    the least recently queued entry of the lowest class that is not above the incoming entry's
    class is evicted to make room (a batch arrival can evict only batch entries; an interactive
    arrival evicts the oldest batch entry, or failing that the oldest interactive one). If no
    entry qualifies the incoming entry is refused, as with ``reject``. The caller must end the
    evicted entry's stream with an error: eviction is never silent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Generic, TypeVar

from llama_orch.core._predict import slot_init
from llama_orch_api import Priority

T = TypeVar("T")


class QueuePolicy(StrEnum):
    reject = "reject"
    drop_lru = "drop-lru"


@slot_init
@dataclass(frozen=True, slots=True)
class Pushed(Generic[T]):
    """Outcome of a successful push: the entry's position and what was evicted for it."""

    position: int
    evicted: tuple[str, T] | None = None


class Full(Exception):
    """The queue is full and the policy could not make room."""


class BoundedPriorityQueue(Generic[T]):
    """Bounded queue keyed by unique ids; O(1) push, pop and remove."""

    __slots__ = ("_batch", "_capacity", "_interactive", "_policy")

    def __init__(self, capacity: int, policy: QueuePolicy = QueuePolicy.reject) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._policy = policy
        self._interactive: OrderedDict[str, T] = OrderedDict()
        self._batch: OrderedDict[str, T] = OrderedDict()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def policy(self) -> QueuePolicy:
        return self._policy

    def __len__(self) -> int:
        return len(self._interactive) + len(self._batch)

    def __contains__(self, key: object) -> bool:
        return key in self._interactive or key in self._batch

    def depth(self, priority: Priority) -> int:
        return len(self._interactive if priority is Priority.interactive else self._batch)

    def ahead_of_new(self, priority: Priority) -> int:
        """How many entries a new entry of ``priority`` would queue behind."""
        if priority is Priority.interactive:
            return len(self._interactive)
        return len(self)

    def push(self, key: str, item: T, priority: Priority) -> Pushed[T]:
        """Queue ``item`` at the back of its class; raise :class:`Full` if there is no room."""
        if key in self:
            raise KeyError(f"duplicate key {key!r}")
        evicted: tuple[str, T] | None = None
        if len(self) >= self._capacity:
            if self._policy is QueuePolicy.reject:
                raise Full
            evicted = self._evict_for(priority)
            if evicted is None:
                raise Full
        position = self.ahead_of_new(priority)
        (self._interactive if priority is Priority.interactive else self._batch)[key] = item
        return Pushed(position, evicted)

    def _evict_for(self, priority: Priority) -> tuple[str, T] | None:
        if self._batch:
            return self._batch.popitem(last=False)
        if priority is Priority.interactive and self._interactive:
            return self._interactive.popitem(last=False)
        return None

    def pop(self) -> tuple[str, T] | None:
        """Take the next entry: the oldest interactive one, else the oldest batch one."""
        if self._interactive:
            return self._interactive.popitem(last=False)
        if self._batch:
            return self._batch.popitem(last=False)
        return None

    def peek(self) -> tuple[str, T] | None:
        for lane in (self._interactive, self._batch):
            for key, item in lane.items():
                return key, item
        return None

    def remove(self, key: str) -> T | None:
        """Remove an entry wherever it is; ``None`` if it is not queued."""
        item = self._interactive.pop(key, None)
        if item is None:
            item = self._batch.pop(key, None)
        return item

    def position(self, key: str) -> int | None:
        """Entries ahead of ``key`` (O(n): for progress reports, not the hot path)."""
        for offset, lane in ((0, self._interactive), (len(self._interactive), self._batch)):
            for index, k in enumerate(lane):
                if k == key:
                    return offset + index
        return None

    def __iter__(self) -> Iterator[tuple[str, T]]:
        """Entries in dispatch order."""
        yield from self._interactive.items()
        yield from self._batch.items()

    def lane(self, priority: Priority, n: int) -> Iterator[T]:
        """The first ``n`` entries of class ``priority`` alone, in dispatch order."""
        lane = self._interactive if priority is Priority.interactive else self._batch
        return islice(lane.values(), n)

    def head(self, n: int, priority: Priority) -> Iterator[T]:
        """The first ``n`` entries that a new ``priority`` entry would queue behind."""
        lanes = [self._interactive] if priority is Priority.interactive else [self._interactive, self._batch]
        count = 0
        for lane in lanes:
            for item in lane.values():
                if count >= n:
                    return
                yield item
                count += 1
