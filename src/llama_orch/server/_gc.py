"""Garbage collection for a process that holds many long-lived objects: queued tasks.

A queued task is about six GC-tracked objects (its record, the request model and its parts, the
frames list). CPython's full collection visits every tracked object that is not frozen, so with
100,000 tasks queued one pause costs over half a second on these machines — for objects that will
live until their task runs, and that hold no reference cycles (a finished task is freed by its
reference count, frozen or not).

So orchestratord, after start-up (:func:`configure`):

- collects once and freezes what start-up built (``gc.freeze()``: the permanent generation, which
  no collection visits), and collects the young generation less often (``THRESHOLD``);
- while tasks pile up, freezes again each time ``freeze_every`` more are queued than at the last
  freeze (looked at every ``interval_s``): what a full collection visits stays about the size of
  the tasks admitted since, not the queue (``gc.freeze()`` moves lists, it visits nothing);
- once the queue is short again (``low_water`` tasks or fewer) after such freezes, unfreezes and
  collects once — a pause the size of what is alive then — and freezes the survivors, so that any
  cycle that became garbage while frozen is freed, and frozen memory does not grow without bound.

The decisions are :class:`GcPolicy` (no clock, no ``gc`` calls: tested as is); :func:`configure`
runs it on the app's loop every ``interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

log = logging.getLogger("llama_orch.server.gc")

THRESHOLD = (50_000, 20, 20)
"""Young collections every 50,000 allocations (CPython's 700 cost ~8 µs a request under load)."""

Action = Literal["freeze", "collect"]


@dataclass
class GcPolicy:
    """When to freeze the queued tasks, and when to give frozen memory back (module docstring)."""

    freeze_every: int = 1_000
    low_water: int = 500
    _at_last_freeze: int = 0
    _frozen_tasks: bool = False

    def step(self, queued: int) -> Action | None:
        """The action for ``queued`` tasks now: ``freeze``, ``collect`` (unfreeze, collect, freeze), or None."""
        if queued - self._at_last_freeze >= self.freeze_every:
            self._at_last_freeze, self._frozen_tasks = queued, True
            return "freeze"
        if self._frozen_tasks and queued <= self.low_water:
            self._at_last_freeze, self._frozen_tasks = queued, False
            return "collect"
        self._at_last_freeze = min(self._at_last_freeze, queued)
        return None


def apply(action: Action) -> float:
    """Carry ``action`` out; the seconds it took (the pause)."""
    started = time.perf_counter()
    if action == "collect":
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    return time.perf_counter() - started


def configure(app: web.Application, queued: Callable[[], int], *, interval_s: float = 0.5) -> None:
    """Freeze start-up's objects, set :data:`THRESHOLD`, and run :class:`GcPolicy` while ``app`` serves
    (``queued``: the tasks queued now, over all pools)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLD)
    policy = GcPolicy()

    async def run() -> None:
        while True:
            await asyncio.sleep(interval_s)
            action = policy.step(queued())
            if action is not None:
                pause = apply(action)
                if log.isEnabledFor(logging.DEBUG):  # get_freeze_count() walks every frozen object
                    log.debug("gc %s: %.1f ms, %d objects frozen", action, pause * 1000, gc.get_freeze_count())

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(run(), name="gc-policy")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(context)


__all__ = ["THRESHOLD", "GcPolicy", "apply", "configure"]
