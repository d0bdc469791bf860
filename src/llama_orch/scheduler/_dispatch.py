"""Dispatch: which queued task starts next, on which replica.

The next task is always the queue's head (``interactive`` before ``batch``, FIFO within a class):
a head that cannot start now holds the ones behind it, so no class or task overtakes another.
The replica is chosen by ``core.place`` (Ready with a free slot, session affinity, most free VRAM,
fewest active, id). Strict-task exclusivity: on an engine whose numerics depend on what else is in
the batch (``Engine.exclusive_strict``, e.g. llama.cpp), a ``strict`` task needs an idle replica
and no other task joins it while it runs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from llama_orch.core import PlacementRequest, ReplicaView, place
from llama_orch.scheduler._replicas import Replica
from llama_orch.scheduler._tasks import TaskRecord
from llama_orch_api import Determinism

log = logging.getLogger("llama_orch.pool")


class Dispatcher:
    """Replica choice and the strict-task exclusivity of one pool."""

    def __init__(self, pool_id: str) -> None:
        self.pool_id = pool_id
        self._exclusive: set[str] = set()
        """Replicas running a strict task alone."""

    def view(self, replica: Replica, strict: bool) -> ReplicaView:
        """Placement's view of ``replica`` for a task (``strict`` or not)."""
        view = replica.view(self.pool_id)
        isolated = replica.replica_id in self._exclusive or (
            strict and replica.active > 0 and replica.engine.exclusive_strict
        )
        return dataclasses.replace(view, ready=False) if isolated and view.ready else view

    def pick(self, replicas: Sequence[Replica], record: TaskRecord, session_replica: str | None) -> Replica | None:
        """The replica ``record`` starts on now, or None (it stays at the head of the queue)."""
        # Placement only takes a ready replica with a free slot (a view is never readier than its
        # replica): with none, say so before building views (every admission pumps a full pool).
        if not any(r.active < r.slots and r.ready for r in replicas):
            return None
        strict = record.request.determinism is Determinism.strict
        views = [self.view(r, strict) for r in replicas]
        if not any(v.ready and v.active < v.slots for v in views):
            return None
        placement = place(views, PlacementRequest(session_replica=session_replica))
        if placement is None:
            return None
        if placement.failed_over:
            log.info(
                "task %s: session %s's replica %s is gone or unhealthy; failing over to %s (KV cache cold)",
                record.task_id,
                record.request.session_id,
                session_replica,
                placement.replica_id,
                extra={"task_id": record.task_id, "narration": "session failover"},
            )
        return next(r for r in replicas if r.replica_id == placement.replica_id)

    def claim(self, replica: Replica, record: TaskRecord) -> None:
        """``record`` starts on ``replica``: take a slot (and the whole replica for an exclusive strict task)."""
        replica.active += 1
        replica.running[record.task_id] = record
        if record.request.determinism is Determinism.strict and replica.engine.exclusive_strict:
            self._exclusive.add(replica.replica_id)

    def release(self, replica: Replica, record: TaskRecord) -> None:
        """``record`` ended on ``replica``: others may join it again (the slot itself is the set's)."""
        if record.request.determinism is Determinism.strict:
            self._exclusive.discard(replica.replica_id)


__all__ = ["Dispatcher"]
