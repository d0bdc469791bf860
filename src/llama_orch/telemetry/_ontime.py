"""The on-time probability of SSE ``metrics`` frames (OC-CLI-2703): will a queued task start
before its deadline, given how wrong start-time predictions have been?

:class:`StartErrors` keeps the last ``window`` errors (actual start minus predicted start, in ms) of a
pool; :meth:`StartErrors.on_time_probability` is the share of them under which the task, predicted
to start in ``predicted_ms``, would start within ``remaining_ms``. Pure: no clock, no I/O.
"""

from __future__ import annotations

import bisect
from collections import deque


class StartErrors:
    def __init__(self, window: int = 256, min_samples: int = 8) -> None:
        self._errors: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self._min = min_samples

    def __len__(self) -> int:
        return len(self._errors)

    def record(self, predicted_ms: float, actual_ms: float) -> None:
        if len(self._errors) == self._errors.maxlen:
            old = self._errors[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        error = actual_ms - predicted_ms
        self._errors.append(error)
        bisect.insort(self._sorted, error)

    def on_time_probability(self, predicted_ms: float, remaining_ms: float | None) -> float | None:
        """P(start ≤ deadline), in [0, 1]; None without a deadline. With fewer than
        ``min_samples`` errors seen, the prediction is taken at its word (1.0 or 0.0)."""
        if remaining_ms is None:
            return None
        if remaining_ms <= 0:
            return 0.0
        if len(self._sorted) < self._min:
            return 1.0 if predicted_ms <= remaining_ms else 0.0
        allowed = remaining_ms - predicted_ms
        return round(bisect.bisect_right(self._sorted, allowed) / len(self._sorted), 4)
