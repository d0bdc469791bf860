"""Adaptive concurrency: how many tasks one client keeps in flight (OC-CLI-2401).

A task is *in flight* from its submission until its stream's terminal event (or until its handle
is closed): while it holds a place in a pool's slots or queue. The limit follows AIMD, as TCP's
congestion window does, so that many clients sharing a backend converge on its capacity instead
of storming it with submissions that end in 429:

* **additive increase**: an admission the server answered with ``backoff_ms == 0`` (its queue is
  less than half full) raises the limit by ``increase / limit``, about one per round of admissions,
  but only while the limit is what holds the client back (an idle client does not inflate it);
* **hold**: an admission with ``backoff_ms > 0`` (the queue is filling) leaves it as it is, the
  early warning that keeps clients from reaching the 429;
* **multiplicative decrease**: a 429 (or an eviction from a ``drop-lru`` queue) multiplies it by
  ``decrease``, once per round: 429s answered to submissions made before the last decrease do not
  cut it again;
* a **ceiling** from ``/v1/capabilities`` (slots plus queue places of every pool) caps it, so a
  client alone never submits more than the backend can hold.

:class:`AdaptiveLimiter` is the arithmetic, with no waiting and no locks; the clients wrap it in a
thread gate (:class:`SyncGate`) or an asyncio gate (:class:`AsyncGate`).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["AdaptiveLimiter", "AsyncGate", "LimiterStats", "Permit", "SyncGate"]


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of a limiter's state and counters."""

    limit: float
    in_flight: int
    ceiling: int | None
    admitted: int
    """Submissions answered 202."""
    backpressure: int
    """Submissions answered 429 (and tasks evicted by ``drop-lru``)."""
    decreases: int
    peak_in_flight: int


class Permit:
    """One place in flight; returned to the limiter exactly once."""

    __slots__ = ("epoch", "released")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.released = False


class AdaptiveLimiter:
    """AIMD concurrency limit; see the module docstring.

    >>> limiter = AdaptiveLimiter(initial=2, max_limit=8)
    >>> a, b = limiter.try_acquire(), limiter.try_acquire()
    >>> limiter.try_acquire() is None
    True
    >>> limiter.on_backpressure(a)
    >>> limiter.limit
    1.4
    """

    def __init__(
        self,
        *,
        initial: float = 2.0,
        min_limit: float = 1.0,
        max_limit: int = 256,
        increase: float = 1.0,
        decrease: float = 0.7,
    ) -> None:
        if not 1.0 <= min_limit <= initial <= max_limit:
            raise ValueError("need 1 <= min_limit <= initial <= max_limit")
        if increase <= 0 or not 0 < decrease < 1:
            raise ValueError("need increase > 0 and 0 < decrease < 1")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.increase = increase
        self.decrease = decrease
        self.limit = float(initial)
        self.ceiling: int | None = None
        self.in_flight = 0
        self._epoch = 0
        self._admitted = 0
        self._backpressure = 0
        self._decreases = 0
        self._peak = 0

    def _cap(self) -> float:
        return float(min(self.max_limit, self.ceiling)) if self.ceiling is not None else float(self.max_limit)

    def set_ceiling(self, ceiling: int | None) -> None:
        """Cap the limit at what the backend can hold (None: only ``max_limit``)."""
        self.ceiling = max(1, ceiling) if ceiling is not None else None
        self.limit = max(self.min_limit, min(self.limit, self._cap()))

    def try_acquire(self) -> Permit | None:
        """A permit if fewer than ``limit`` are in flight, else None."""
        allowed = max(1, math.floor(self.limit))
        if self.in_flight >= allowed:
            return None
        self.in_flight += 1
        self._peak = max(self._peak, self.in_flight)
        return Permit(self._epoch)

    def on_admitted(self, permit: Permit, backoff_ms: int) -> None:
        """The server admitted the task; ``backoff_ms`` is its advice (0: room to spare)."""
        self._admitted += 1
        if backoff_ms == 0 and self.in_flight >= math.floor(self.limit):
            self.limit = min(self._cap(), self.limit + self.increase / self.limit)

    def on_backpressure(self, permit: Permit) -> None:
        """A 429, or an eviction: cut the limit, once per round."""
        self._backpressure += 1
        if permit.epoch == self._epoch:
            self.limit = max(self.min_limit, self.limit * self.decrease)
            self._epoch += 1
            self._decreases += 1

    def release(self, permit: Permit) -> None:
        """Give the place back; a second release of the same permit does nothing."""
        if not permit.released:
            permit.released = True
            self.in_flight -= 1

    def stats(self) -> LimiterStats:
        return LimiterStats(
            limit=self.limit,
            in_flight=self.in_flight,
            ceiling=self.ceiling,
            admitted=self._admitted,
            backpressure=self._backpressure,
            decreases=self._decreases,
            peak_in_flight=self._peak,
        )


class SyncGate:
    """Blocks threads until the limiter has room; every change wakes the waiters."""

    def __init__(self, limiter: AdaptiveLimiter) -> None:
        self.limiter = limiter
        self._cond = threading.Condition()

    def acquire(self) -> Permit:
        with self._cond:
            while (permit := self.limiter.try_acquire()) is None:
                self._cond.wait()
            return permit

    def admitted(self, permit: Permit, backoff_ms: int) -> None:
        with self._cond:
            self.limiter.on_admitted(permit, backoff_ms)
            self._cond.notify_all()

    def backpressure(self, permit: Permit) -> None:
        with self._cond:
            self.limiter.on_backpressure(permit)

    def release(self, permit: Permit) -> None:
        with self._cond:
            self.limiter.release(permit)
            self._cond.notify_all()

    def set_ceiling(self, ceiling: int | None) -> None:
        with self._cond:
            self.limiter.set_ceiling(ceiling)
            self._cond.notify_all()


class AsyncGate:
    """The same for asyncio tasks, on one event loop (no lock needed: nothing here awaits)."""

    def __init__(self, limiter: AdaptiveLimiter) -> None:
        self.limiter = limiter
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> Permit:
        while (permit := self.limiter.try_acquire()) is None:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        return permit

    def admitted(self, permit: Permit, backoff_ms: int) -> None:
        self.limiter.on_admitted(permit, backoff_ms)
        self._wake()

    def backpressure(self, permit: Permit) -> None:
        self.limiter.on_backpressure(permit)

    def release(self, permit: Permit) -> None:
        self.limiter.release(permit)
        self._wake()

    def set_ceiling(self, ceiling: int | None) -> None:
        self.limiter.set_ceiling(ceiling)
        self._wake()

    def _wake(self) -> None:
        # Every waiter tries again; those that find no room wait anew.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
