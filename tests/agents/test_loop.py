"""The loop's sizing: ``--agents auto`` from the pools' slots, grown while agents spend time outside model calls."""

from __future__ import annotations

from llama_orch.agents import auto_agents
from llama_orch.agents._loop import auto_resize
from llama_orch_api import Capabilities, PoolCapability


def caps(*pools: tuple[str, int, int]) -> Capabilities:
    """Only what sizing reads: each pool's id, concurrency and queue places."""
    return Capabilities.model_construct(
        api_version="0.1.0",
        pools=[PoolCapability.model_construct(id=pid, concurrency=slots, slots=slots, queue_capacity=queue)
               for pid, slots, queue in pools],
    )  # fmt: skip


def test_auto_starts_at_the_slots_plus_half() -> None:
    assert auto_agents(caps(("a", 4, 64))) == (6, 4)
    assert auto_agents(caps(("a", 4, 64), ("b", 2, 8))) == (9, 6)
    assert auto_agents(caps(("a", 4, 64), ("b", 2, 8)), {"b"}) == (3, 2)
    assert auto_agents(caps(("a", 4, 1))) == (5, 4)  # never beyond slots plus queue places
    assert auto_agents(caps()) == (1, 0)


def test_auto_grows_with_the_time_agents_spend_outside_model_calls() -> None:
    assert auto_resize(4, 68, 6, None) == 6
    assert auto_resize(4, 68, 6, 1.0) == 6  # every agent always in a call: the start size is enough
    assert auto_resize(4, 68, 6, 0.5) == 9
    assert auto_resize(16, 80, 24, 0.25) == 65
    assert auto_resize(16, 40, 24, 0.1) == 40  # capped by what the backend can hold
