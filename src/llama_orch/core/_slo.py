"""A sliding window of finished tasks' service levels, for replica-set SLO snapshots."""

from __future__ import annotations

import math
from collections import deque


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


class SloWindow:
    """The last ``window_s`` seconds (and at most ``max_samples`` tasks) of TTFT and decode rate."""

    def __init__(self, window_s: float = 300.0, max_samples: int = 1000) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float, float | None]] = deque(maxlen=max_samples)

    def add(self, now: float, first_token_ms: float, tokens_per_s: float | None) -> None:
        self._samples.append((now, first_token_ms, tokens_per_s))

    def snapshot(self, now: float) -> dict[str, float | int | None]:
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        ttft = [s[1] for s in self._samples]
        rates = [s[2] for s in self._samples if s[2] is not None]
        return {
            "window_s": self.window_s,
            "samples": len(self._samples),
            "first_token_ms_p50": percentile(ttft, 50),
            "first_token_ms_p95": percentile(ttft, 95),
            "decode_tokens_per_s_p50": percentile(rates, 50),
            "decode_tokens_per_s_p95": percentile(rates, 95),
        }
