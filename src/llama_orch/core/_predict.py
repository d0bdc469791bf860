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
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field


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
    heapq.heapify(heap)
    for service in ahead_service_ms:
        heapq.heapreplace(heap, heap[0] + service)
    if extra_ahead_ms > 0:
        return heap[0] + extra_ahead_ms / len(heap)
    return heap[0]
