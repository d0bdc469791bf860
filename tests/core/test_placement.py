"""Placement (core/_placement.py): examples for each rule, and properties over random replica sets."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.core import Placement, PlacementRequest, ReplicaView, place

GIB = 2**30


def r(
    rid: str,
    *,
    pool: str = "p",
    ready: bool = True,
    slots: int = 2,
    active: int = 0,
    devices: frozenset[int] | None = None,
    vram: int | None = None,
) -> ReplicaView:
    return ReplicaView(rid, pool, ready, slots, active, devices, vram)


def test_only_ready_replicas_with_a_free_slot() -> None:
    replicas = [r("a", ready=False, vram=80 * GIB), r("b", active=2, vram=70 * GIB), r("c", vram=1 * GIB)]
    assert place(replicas, PlacementRequest()) == Placement("c", kv_warm=False, failed_over=False)
    assert place(replicas[:2], PlacementRequest()) is None


def test_most_free_vram_then_fewest_active_then_id() -> None:
    assert place([r("a", vram=GIB), r("b", vram=2 * GIB)], PlacementRequest()).replica_id == "b"  # type: ignore[union-attr]
    same = [r("b", vram=GIB, active=1), r("c", vram=GIB, active=0), r("a", vram=GIB, active=1)]
    assert place(same, PlacementRequest()).replica_id == "c"  # type: ignore[union-attr]
    tied = [r("b", vram=GIB), r("a", vram=GIB)]
    assert place(tied, PlacementRequest()).replica_id == "a"  # type: ignore[union-attr]
    # Unknown VRAM (CPU) ranks after any known amount, then the same tie-breaks apply.
    cpu = [r("cpu0"), r("gpu", vram=1), r("cpu1", active=1)]
    assert place(cpu, PlacementRequest()).replica_id == "gpu"  # type: ignore[union-attr]
    assert place([cpu[0], cpu[2]], PlacementRequest()).replica_id == "cpu0"  # type: ignore[union-attr]


def test_pins_and_device_masks() -> None:
    replicas = [
        r("x/0", pool="x", devices=frozenset({0}), vram=20 * GIB),
        r("y/0", pool="y", devices=frozenset({1}), vram=10 * GIB),
        r("y/1", pool="y", devices=frozenset({0, 1}), vram=5 * GIB),
        r("y/cpu", pool="y"),
    ]
    assert place(replicas, PlacementRequest(pool="y")).replica_id == "y/0"  # type: ignore[union-attr]
    assert place(replicas, PlacementRequest(pool="y", device=0)).replica_id == "y/1"  # type: ignore[union-attr]
    assert place(replicas, PlacementRequest(device=0)).replica_id == "x/0"  # type: ignore[union-attr]
    assert place(replicas, PlacementRequest(device=7)) is None
    assert place(replicas, PlacementRequest(pool="z")) is None


def test_session_affinity_and_failover() -> None:
    warm = [r("a", vram=GIB), r("b", vram=9 * GIB)]
    assert place(warm, PlacementRequest(session_replica="a")) == Placement("a", kv_warm=True, failed_over=False)
    # Its replica is unhealthy, or gone: fail over, cold.
    sick = [r("a", ready=False, vram=GIB), r("b", vram=9 * GIB)]
    assert place(sick, PlacementRequest(session_replica="a")) == Placement("b", kv_warm=False, failed_over=True)
    assert place(warm[1:], PlacementRequest(session_replica="a")) == Placement("b", kv_warm=False, failed_over=True)
    # Healthy but busy: the task does not wait behind it; it runs elsewhere, cold, without a failover.
    busy = [r("a", active=2, vram=GIB), r("b", vram=9 * GIB)]
    assert place(busy, PlacementRequest(session_replica="a")) == Placement("b", kv_warm=False, failed_over=False)


# -- properties ----------------------------------------------------------------------------------

POOLS = ["p", "q"]
replica_views = st.builds(
    ReplicaView,
    replica_id=st.sampled_from([f"r{i}" for i in range(12)]),
    pool_id=st.sampled_from(POOLS),
    ready=st.booleans(),
    slots=st.integers(1, 4),
    active=st.integers(0, 4),
    devices=st.none() | st.frozensets(st.integers(0, 3), min_size=1, max_size=3),
    vram_free_bytes=st.none() | st.integers(0, 8).map(lambda g: g * GIB),
)
replica_sets = st.lists(replica_views, max_size=10, unique_by=lambda v: v.replica_id)
requests = st.builds(
    PlacementRequest,
    pool=st.none() | st.sampled_from(POOLS),
    device=st.none() | st.integers(0, 3),
    session_replica=st.none() | st.sampled_from([f"r{i}" for i in range(14)]),
)


def _eligible(v: ReplicaView, q: PlacementRequest) -> bool:
    return (
        v.ready
        and v.active < v.slots
        and (q.pool is None or v.pool_id == q.pool)
        and (q.device is None or (v.devices is not None and q.device in v.devices))
    )


@settings(max_examples=400, deadline=None)
@given(replica_sets, requests, st.randoms(use_true_random=False))
def test_placement_properties(replicas: list[ReplicaView], request: PlacementRequest, rnd: random.Random) -> None:
    chosen = place(replicas, request)
    ok = [v for v in replicas if _eligible(v, request)]
    # Complete: a task is placed whenever some replica may take it; and only on such a replica.
    assert (chosen is None) == (not ok)
    if chosen is None:
        return
    by_id = {v.replica_id: v for v in replicas}
    picked = by_id[chosen.replica_id]
    assert picked in ok
    # Affinity: the session's replica whenever it may take the task; warmth only there.
    session_ok = request.session_replica in {v.replica_id for v in ok}
    assert chosen.kv_warm == (chosen.replica_id == request.session_replica) == session_ok
    # Failover is reported exactly when the session's replica is gone or not Ready.
    gone = request.session_replica is not None and not (
        request.session_replica in by_id and by_id[request.session_replica].ready
    )
    assert chosen.failed_over == gone
    if not session_ok:
        # Otherwise the best by (known VRAM first, most VRAM, fewest active, id): none beats it.
        def key(v: ReplicaView) -> tuple[int, int, int, str]:
            return (v.vram_free_bytes is None, -(v.vram_free_bytes or 0), v.active, v.replica_id)

        assert all(key(picked) <= key(v) for v in ok)
    # The order the replicas are listed in does not matter.
    shuffled = list(replicas)
    rnd.shuffle(shuffled)
    assert place(shuffled, request) == chosen
