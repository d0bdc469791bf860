"""The ``bdd-runner`` console script as a user runs it (OC-CLI-3101): a process, its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llama_orch.bdd._server import EmbeddedOrchestratord
from llama_orch.client import Client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "bdd-runner"
FEATURES = ROOT / "tests" / "bdd" / "features"
EXAMPLE_CONFIG = ROOT / "tests" / "bdd" / "orchestratord.yaml"

pytestmark = pytest.mark.subprocess


def run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LLORCH_")}
    environ.update(env)
    return subprocess.run([str(BIN), *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def report(path: Path) -> list[dict[str, Any]]:
    """behave's JSON report: one entry per feature that ran, with its scenarios and their status."""
    return list(json.loads(path.read_text()))


def test_the_feature_path_selects_one_feature(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = run(
        "--", "-f", "json", "-o", str(out), "-f", "plain",
        LLORCH_BDD_FEATURE_PATH="tests/bdd/features/backpressure.feature",
        LLORCH_BDD_CONFIG=str(EXAMPLE_CONFIG),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    features = report(out)
    assert [f["name"] for f in features] == ["Backpressure"]
    scenarios = [e for e in features[0]["elements"] if e["type"] == "scenario"]
    assert [s["name"] for s in scenarios] == [
        "A full queue answers 429 with retry advice and a policy label",
        "Room in the queue admits tasks again",
    ]
    assert {s["status"] for s in scenarios} == {"passed"}
    assert f"config {EXAMPLE_CONFIG}" in proc.stdout  # the embedded server took LLORCH_BDD_CONFIG


def test_every_feature_passes_on_the_default_embedded_server() -> None:
    proc = run()  # default path tests/bdd/features, default config (shipped in the package)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "7 features passed, 0 failed, 0 skipped" in proc.stdout
    assert ", 0 failed, 0 skipped" in proc.stdout.split("scenarios passed")[1].splitlines()[0]


def test_a_live_server_given_by_url_is_used(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    with EmbeddedOrchestratord(EXAMPLE_CONFIG) as server:
        proc = run(
            str(FEATURES / "sessions.feature"), "--", "-f", "json", "-o", str(out),
            LLORCH_BASE_URL=server.base_url,
        )  # fmt: skip
        with Client(server.base_url) as client:
            decoded = client.replicasets().replicasets[0].slo.samples  # tasks this server decoded
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "orchestratord (pid" not in proc.stdout  # no embedded server of its own
    assert [f["name"] for f in report(out)] == ["Sessions"]
    assert decoded >= 2  # the two sessions' turns ran on the server given by LLORCH_BASE_URL


def test_a_failing_step_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "wrong.feature").write_text(
        "Feature: A deliberately wrong expectation\n\n"
        "  Scenario: an unknown pool is expected to be accepted\n"
        '    When I submit a task with prompt "x" pinned to pool "no-such-pool"\n'
        "    Then the task is admitted with a queue position, a predicted start and a stream url\n"
    )
    proc = run(str(tmp_path / "wrong.feature"), LLORCH_BDD_CONFIG=str(EXAMPLE_CONFIG))
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "0 features passed, 1 failed" in proc.stdout
    assert "the task was refused" in proc.stdout  # the failing assertion's message is shown


def test_an_undefined_step_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "undefined.feature").write_text(
        "Feature: A step nobody wrote\n\n  Scenario: it cannot pass\n    When the moon is made of cheese\n"
    )
    proc = run(LLORCH_BDD_FEATURE_PATH=str(tmp_path), LLORCH_BDD_CONFIG=str(EXAMPLE_CONFIG))
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "1 undefined" in proc.stdout


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LLORCH_BDD_FEATURE_PATH": "no/such.feature"}, "no feature file or folder at no/such.feature"),
        ({"LLORCH_BDD_CONFIG": "no/such.yaml"}, "no orchestratord config at no/such.yaml"),
    ],
)
def test_a_missing_path_exits_2(env: dict[str, str], needle: str) -> None:
    proc = run(**env)
    assert proc.returncode == 2
    assert needle in proc.stderr
