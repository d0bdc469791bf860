"""Background work yields to streaming: task records and the at-rest scrub while tasks stream.

What a task's end leaves to do — its record artifact (redacted, canonicalized, written), its event
log redacted at rest — is milliseconds of CPU on the event loop per task, and tasks often end
together. Done at once, a burst of ends holds up the tokens of every task still streaming. So
while any task streams, each piece of background work is followed by a pause long enough that
background work takes at most :data:`BACKGROUND_SHARE` of the loop; when nothing streams it runs
back to back. One :class:`Pacer` is shared by all of an orchestrator's background work (records
and scrubs together keep to the one share). Nothing is dropped or skipped, only spread out; and
a worker that has fallen :data:`CATCH_UP` pieces behind does not wait (under a load that ends tasks
faster than a fifth of the loop can write their records, records and scrubs must not fall behind
without bound: the record queue is bounded, and at-rest secrets wait for their scrub).
"""

from __future__ import annotations

from collections.abc import Callable

BACKGROUND_SHARE = 0.2
"""The most of the event loop background work takes while tasks stream."""

MAX_PAUSE_S = 0.5
"""No pause is longer than this, however long the piece before it took."""

CATCH_UP = 64
"""Pieces waiting (records, scrubs) from which a worker stops pausing until it has caught up."""

Busy = Callable[[], bool]
"""Whether any task is streaming now."""


def pause_after(elapsed_s: float, busy: Busy | None) -> float:
    """How long to wait after a piece of background work that took ``elapsed_s`` (0 when idle)."""
    if busy is None or elapsed_s <= 0 or not busy():
        return 0.0
    return min(MAX_PAUSE_S, elapsed_s * (1 / BACKGROUND_SHARE - 1))


class Pacer:
    """When the next piece of background work may start (loop time), for every worker that shares it."""

    __slots__ = ("busy", "next_at")

    def __init__(self, busy: Busy | None = None) -> None:
        self.busy = busy
        self.next_at = 0.0

    def wait_s(self, now: float, backlog: int = 0) -> float:
        """How long a worker with ``backlog`` pieces waiting waits before its next piece (0: go)."""
        if backlog >= CATCH_UP:
            return 0.0
        return max(0.0, self.next_at - now)

    def ran(self, started: float, now: float) -> None:
        """A piece of background work ran from ``started`` to ``now``."""
        self.next_at = max(self.next_at, now + pause_after(now - started, self.busy))


__all__ = ["BACKGROUND_SHARE", "CATCH_UP", "MAX_PAUSE_S", "Busy", "Pacer", "pause_after"]
