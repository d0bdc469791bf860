"""The `bdd-runner` console script as a user runs it (OC-CLI-3101)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "bdd-runner"
FEATURES = ROOT / "tests" / "bdd" / "features"

pytestmark = pytest.mark.subprocess


def run(feature_path: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("LLORCH_BASE_URL", "LLORCH_BDD_CONFIG")}
    environ.update(LLORCH_BDD_FEATURE_PATH=str(feature_path), **env)
    return subprocess.run([str(BIN)], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=240)


def test_one_feature_runs_alone_and_passes() -> None:
    proc = run(FEATURES / "backpressure.feature")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 feature passed, 0 failed" in proc.stdout
    assert "Feature: Backpressure" in proc.stdout
    for other in ("Feature: Task admission", "Feature: SSE token streaming", "Feature: Sessions"):
        assert other not in proc.stdout


def test_every_feature_passes() -> None:
    proc = run(FEATURES)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "7 features passed, 0 failed" in proc.stdout


def test_a_failing_step_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    # The project's steps and hooks, reused by a feature that expects the wrong status.
    (tmp_path / "steps" / "api_steps.py").write_text((FEATURES / "steps" / "api_steps.py").read_text())
    (tmp_path / "environment.py").write_text((FEATURES / "environment.py").read_text())
    (tmp_path / "wrong.feature").write_text(
        "Feature: A deliberately wrong expectation\n\n"
        "  Scenario: an unknown field is not accepted\n"
        "    Given orchestratord is running\n"
        '    When I submit a task with prompt "x" and max_tokens 100000\n'
        "    Then the answer status is 202\n"
    )
    proc = run(tmp_path / "wrong.feature")
    assert proc.returncode != 0
    assert "1 feature passed" not in proc.stdout
    assert "failed" in proc.stdout


def test_missing_feature_path_exits_2(tmp_path: Path) -> None:
    proc = run(tmp_path / "nothing-here.feature")
    assert proc.returncode == 2
    assert "no feature file or folder" in proc.stderr
