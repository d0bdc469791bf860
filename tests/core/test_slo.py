from __future__ import annotations

import pytest

from llama_orch.core import SloWindow
from llama_orch.core._slo import percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 50, None), ([5.0], 95, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([1.0, 2.0, 3.0, 4.0], 95, 4.0),
     ([float(i) for i in range(1, 101)], 95, 95.0)],
)  # fmt: skip
def test_nearest_rank_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_window_forgets_old_samples_and_caps_count() -> None:
    w = SloWindow(window_s=10, max_samples=3)
    for t in range(5):
        w.add(float(t), first_token_ms=10.0 * t, tokens_per_s=None if t == 0 else 100.0 * t)
    snap = w.snapshot(now=5.0)
    assert snap["samples"] == 3  # capped: the newest three
    assert snap["first_token_ms_p50"] == 30.0
    assert snap["decode_tokens_per_s_p95"] == 400.0
    assert w.snapshot(now=100.0)["samples"] == 0
    assert w.snapshot(now=100.0)["first_token_ms_p50"] is None
