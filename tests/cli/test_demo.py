"""``llama-orch loop demo`` (the README's main command, ``scripts/run``): it starts orchestratord
itself, copies an example project into a new git repository, runs a bounded loop, prints the
matrix and what got merged, and stops the server it started.

Here orchestratord is started on the scripted mock pool of the strkit example (``--config``), so
the whole path is exercised in seconds; ``tests/agents/test_loop_real_engine.py`` runs the loop on
the real embedded engine."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from llama_orch.cli._demo import outcome
from tests.agents._strkit import EXAMPLE, git, scripted_config
from tests.cli.conftest import CLI, clean_env

pytestmark = pytest.mark.subprocess


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=clean_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(900)
def test_the_demo_starts_its_backend_runs_the_loop_and_stops_the_backend(tmp_path: Path) -> None:
    config = tmp_path / "pools.yaml"
    pools = scripted_config(tokens_per_s=2000, slots=2).model_dump(mode="json", exclude_none=True)
    config.write_text(yaml.safe_dump(pools))
    work = tmp_path / "demo"
    done = cli("--json", "loop", "demo", "--example", str(EXAMPLE), "--config", str(config), "--dir", str(work),
               "--budget-time", "600")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    demo = summary["demo"]
    repo = Path(demo["repository"])
    assert repo == work / "strkit" and (repo / "specs" / "strkit.md").is_file()
    assert summary["status"] == "done" and demo["outcome"].startswith("24 of 24 work items merged")
    # The copy is a git repository of its own, one commit on main, the loop's work on its branch.
    assert git(repo, "rev-list", "--count", "main") == "1"
    assert int(git(repo, "rev-list", "--count", "llorch/integration")) > 1
    assert {row["requirement"] for row in summary["trace"]["rows"]} == {f"STR-000{i}" for i in range(1, 9)}
    # The orchestratord it started is gone.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{demo['backend']}/v1/capabilities", timeout=5)
    assert (work / "orchestratord.log").stat().st_size > 0


def test_bad_demo_input_is_a_usage_error(tmp_path: Path) -> None:
    missing = cli("loop", "demo", "--example", str(tmp_path / "nowhere"), "--dir", str(tmp_path / "d"), timeout=60)
    assert missing.returncode == 2 and "no example project" in missing.stderr
    both = cli("loop", "demo", "--connect", "--config", str(tmp_path / "x.yaml"), "--dir", str(tmp_path / "d"),
               timeout=60)  # fmt: skip
    assert both.returncode == 2 and "give one of them" in both.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_the_outcome_counts_merged_items_per_kind() -> None:
    states = {"contract:A-1": "merged", "test:A-1": "merged", "code:A-1": "failed", "contract:A-2": "waiting"}
    assert outcome({"item_states": states}) == "2 of 4 work items merged (code 0/1, contract 1/2, test 1/1)"
    assert outcome({}) == "0 of 0 work items merged (none planned)"
