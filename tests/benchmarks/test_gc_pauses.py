"""benchmarks/gc_pauses.py (section ``gc`` of ``scripts/bench``): a tiny run of both variants goes
through the real admission path and reports what the table shows. No timing thresholds: the numbers
depend on the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks._common import Cpus

from benchmarks import gc_pauses

pytestmark = pytest.mark.subprocess


def test_a_small_gc_run_queues_every_task_and_reports_both_variants(tmp_path: Path) -> None:
    result = gc_pauses.run(gc_pauses.GcParams(tasks=200, repeats=1, concurrency=8), Cpus(None, None), tmp_path)

    for variant in gc_pauses.VARIANTS:
        r = result[variant]
        assert r["statuses"] == {"202": 200}
        assert r["tasks_queued"] == 200 - gc_pauses.SLOTS  # the one slot holds a task that never gives a token
        assert r["tracked_objects_per_task"] > 0
        assert len(r["full_collect_cpu_ms"]) == 1
        assert r["gc_threshold"] == list(gc_pauses.GC_THRESHOLD)
    assert result["no_freeze"]["frozen_objects"] == 0
    assert result["freeze"]["frozen_objects"] > 0 and result["policy"]["frozen_objects"] > 0
    assert result["notes"] == []
    text = gc_pauses.report(result)
    assert "orchestratord's policy" in text and "target: full GC < 20 ms" in text


def test_the_threshold_is_the_one_orchestratord_sets() -> None:
    assert gc_pauses._main_threshold() == gc_pauses.GC_THRESHOLD
