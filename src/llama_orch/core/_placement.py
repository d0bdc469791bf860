"""Placement: which replica runs the next task of a pool (DESIGN.md, data plane step 2).

Pure: it sees replicas as :class:`ReplicaView` snapshots and decides; the server builds the views
(health, slots, device masks, free VRAM from the GPU inventory) and acts on the answer.

The rules, in order:

1. Only replicas that are Ready and have a free slot, in the pinned pool (if the task names one),
   whose device mask contains the requested device (if the task asks for one).
2. Session affinity: the session's replica when it is among those — its KV cache is warm. When
   that replica is gone or unhealthy the task fails over (``failed_over``), and the placement says
   ``kv_warm=False``. When it is healthy but every slot is busy, the task does not wait for it
   (that would hold up the queue behind it): it goes elsewhere, cold (``kv_warm=False``).
3. Otherwise the most free VRAM (unknown, e.g. CPU, ranks last), then the fewest active slots,
   then the replica id (so equal replicas are chosen in a stable order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What placement needs to know about one replica, at the moment of choosing."""

    replica_id: str
    pool_id: str
    ready: bool
    slots: int
    active: int
    devices: frozenset[int] | None = None
    """The replica's device mask (GPU indices it runs on); None when it runs on CPU or is unknown."""
    vram_free_bytes: int | None = None
    """Free VRAM across its devices; None when unknown (CPU, remote without a report)."""

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - self.active)


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """What the task asks of its replica."""

    pool: str | None = None
    """Pin: only replicas of this pool."""
    device: int | None = None
    """Only replicas whose device mask contains this GPU index."""
    session_replica: str | None = None
    """The replica the task's session last ran on (its KV cache may be warm there)."""


@dataclass(frozen=True, slots=True)
class Placement:
    replica_id: str
    kv_warm: bool
    """True when the task stays on its session's replica."""
    failed_over: bool
    """True when the session's replica is gone or unhealthy and the task went elsewhere."""


def eligible(replica: ReplicaView, request: PlacementRequest) -> bool:
    """Whether ``replica`` may take the task now (rule 1)."""
    if not replica.ready or replica.free_slots <= 0:
        return False
    if request.pool is not None and replica.pool_id != request.pool:
        return False
    return request.device is None or (replica.devices is not None and request.device in replica.devices)


def rank(replica: ReplicaView) -> tuple[int, int, int, str]:
    """Sort key of rule 3: smaller is better."""
    known = replica.vram_free_bytes is not None
    return (0 if known else 1, -(replica.vram_free_bytes or 0), replica.active, replica.replica_id)


def place(replicas: Sequence[ReplicaView], request: PlacementRequest) -> Placement | None:
    """The replica for the task, or None when none may take it now (it stays queued)."""
    candidates = [r for r in replicas if eligible(r, request)]
    wanted = request.session_replica
    if wanted is not None:
        for replica in candidates:
            if replica.replica_id == wanted:
                return Placement(replica.replica_id, kv_warm=True, failed_over=False)
    if not candidates:
        return None
    best = min(candidates, key=rank)
    failed_over = wanted is not None and not any(r.replica_id == wanted and r.ready for r in replicas)
    return Placement(best.replica_id, kv_warm=False, failed_over=failed_over)


__all__ = ["Placement", "PlacementRequest", "ReplicaView", "eligible", "place", "rank"]
