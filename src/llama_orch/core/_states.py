"""The states a pool goes through, as an enum rather than bare strings.

::

    ready ──drain──▶ draining ──deadline or empty──▶ drained ──reload──▶ reloading ──▶ ready
      │  ◀──────────────── reload (new replicas beside the old, then swapped) ─────────┘
      └── model not provisioned / every replica failed ──▶ unready ──reload──▶ reloading

Only ``ready`` and ``reloading`` pools admit tasks (a reload keeps serving the old model until it
swaps). The values are the API's ``PoolState`` strings.
"""

from __future__ import annotations

from enum import StrEnum


class PoolState(StrEnum):
    ready = "ready"
    draining = "draining"
    drained = "drained"
    reloading = "reloading"
    unready = "unready"

    @property
    def admits(self) -> bool:
        """Whether a pool in this state takes new tasks."""
        return self is PoolState.ready or self is PoolState.reloading

    @property
    def busy(self) -> bool:
        """Whether an operation (drain, reload) is under way: a second one is a conflict."""
        return self is PoolState.draining or self is PoolState.reloading


__all__ = ["PoolState"]
