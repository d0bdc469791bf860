"""The auto-programmer end to end: the real CLI and a real orchestratord, as processes, on the strkit example.

orchestratord serves one mock pool scripted by tests/agents/fixtures/strkit.script.yaml (prepared
answers per role and work item, with four deliberate faults), the repository is a fresh git
repository holding only the spec, and every acceptance bullet of issue 10 is checked on what the
run leaves: git history and trailers, the run's events, the server's artifacts and replica sets.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llama_orch.cli import ExitCode
from llama_orch.client import Client
from llama_orch.server.config import OrchestratorConfig
from tests.agents._strkit import git, repo_state, scripted_config, strkit_repo
from tests.cli.conftest import CLI, clean_env

pytestmark = pytest.mark.subprocess

Orchestratord = Callable[[OrchestratorConfig | None], str]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=clean_env(), capture_output=True, text=True, timeout=timeout)


def events_of(repo: Path) -> list[dict[str, Any]]:
    files = sorted((repo / ".git" / "llorch" / "runs").glob("*/events.jsonl"))
    if not files:
        return []
    out = []
    for line in files[-1].read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def work_items_merged(repo: Path) -> list[str]:
    """``Work-Item`` trailers of every commit on the integration branch (candidates reach it as merge parents)."""
    text = git(repo, "log", "--format=%(trailers:key=Work-Item,valueonly)", "llorch/integration")
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.mark.timeout(900)
def test_the_loop_end_to_end(orchestratord: Orchestratord, tmp_path: Path) -> None:
    base = orchestratord(scripted_config(tokens_per_s=400, slots=2))
    repo = strkit_repo(tmp_path)
    main_before = git(repo, "rev-parse", "main")

    # The plan: every requirement gets a contract, a test and code, in three waves.
    planned = cli("--base-url", base, "plan", "--repo", str(repo), "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert len(plan["plan"]["items"]) == 24 and {i["wave"] for i in plan["plan"]["items"]} == {1, 2, 3}
    with Client(base) as client:
        assert client.get_artifact(plan["artifact"]).kind.value == "plan"

    # The loop, killed with SIGKILL once some work is merged...
    proc = subprocess.Popen([str(CLI), "--base-url", base, "loop", "run", "--repo", str(repo)], env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: sum(e.get("outcome") == "merged" for e in events_of(repo)) >= 9, 300, "nine merges")
    finally:
        proc.kill()
        proc.wait(30)
    before = events_of(repo)
    run_id = sorted((repo / ".git" / "llorch" / "runs").iterdir())[-1].name
    merged_before = {e["item"] for e in before if e.get("event") == "decision" and e["outcome"] == "merged"}
    assert 9 <= len(merged_before) < 24

    # ... then resumed: it finishes without redoing merged work.
    resumed = cli("--base-url", base, "--json", "loop", "run", "--repo", str(repo), "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "done" and summary["run_id"] == run_id
    after = events_of(repo)[len(before) :]
    assert not [e for e in after if e.get("event") == "call-started" and e["item"] in merged_before]
    merged = work_items_merged(repo)
    assert sorted(merged) == sorted(f"{k}:STR-000{n}" for k in ("contract", "test", "code") for n in range(1, 9))
    assert not [w for w, n in collections.Counter(merged).items() if n > 1]  # nothing merged twice

    everything = events_of(repo)
    decisions = [e for e in everything if e.get("event") == "decision"]
    # The deliberately wrong code (an off-by-one truncate) was rejected by its tests gate and never merged.
    wrong = [d for d in decisions if d["item"] == "code:STR-0003" and d["outcome"] != "merged"]
    assert wrong and wrong[0]["outcome"] == "gates-failed"
    assert "test_truncate_cuts_to_exactly_width" in wrong[0]["reason"]
    assert subprocess.run(["git", "merge-base", "--is-ancestor", wrong[0]["candidate"], "llorch/integration"],
                          cwd=repo, check=False).returncode == 1  # fmt: skip
    # A test that cannot even be collected (a syntax error) was rejected by the tests-plan gate.
    broken = [d for d in decisions if d["item"] == "test:STR-0006" and d["outcome"] != "merged"]
    plan_gate = next(g for g in broken[0]["gates"] if g["name"] == "tests-plan")
    assert plan_gate["status"] == "fail" and "SyntaxError" in plan_gate["reason"]
    # Malformed answers were asked again within the call, each attempt recorded.
    calls = collections.Counter(e["item"] for e in everything if e.get("event") == "call-finished")
    assert calls["test:STR-0005"] == 2 and calls["contract:STR-0007"] == 2

    # Every requirement is traced to a contract, a test and a commit; the matrix is stored and printed.
    assert summary["trace"]["complete"] == 8 == summary["trace"]["total"]
    traced = cli("trace", "--repo", str(repo), "--json")
    assert traced.returncode == 0 and json.loads(traced.stdout)["complete"] == 8
    for row in json.loads(traced.stdout)["rows"]:
        assert row["contracts"] and row["tests"] and any("tests: pass" in c["gates"] for c in row["commits"])

    # Artifact lineage is complete: each merge decision goes back through the edit set, the model's
    # response, its prompt and the work item to the plan.
    with Client(base) as client:
        plans = {summary["artifacts"]["plan"]}
        for d in (d for d in decisions if d["outcome"] == "merged" and d["item"] not in merged_before):
            lineage = client.artifact_lineage(d["artifact"])
            tags = [a.tags for a in lineage.ancestors]
            assert any("agent:edit-set" in t for t in tags) and any("agent:response" in t for t in tags)
            assert any("agent:prompt" in t for t in tags) and any("agent:work-item" in t for t in tags)
            assert lineage.root in plans | {a.id for a in lineage.ancestors if a.kind.value == "plan"}
        assert client.get_artifact(summary["artifacts"]["trace"]).content["complete"] == 8  # type: ignore[index]

    # The integration branch passes its gates; the caller's branch and worktree are untouched.
    check = tmp_path / "check"
    git(repo, "worktree", "add", "--quiet", "--detach", str(check), "llorch/integration")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=check,
                           env={**clean_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert tests.returncode == 0, tests.stdout
    assert "15 passed" in tests.stdout
    git(repo, "worktree", "remove", "--force", str(check))
    assert git(repo, "rev-parse", "main") == main_before
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not git(repo, "branch", "--list", "llorch/agent/*")


@pytest.mark.timeout(300)
def test_ctrl_c_cancels_the_tasks_on_the_server_and_keeps_the_state(
    orchestratord: Orchestratord, tmp_path: Path
) -> None:
    base = orchestratord(scripted_config(tokens_per_s=8, slots=2))
    repo = strkit_repo(tmp_path)
    before = repo_state(repo)
    proc = subprocess.Popen([str(CLI), "--base-url", base, "loop", "run", "--repo", str(repo), "--agents", "3"],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    with Client(base) as client:
        try:
            wait_for(lambda: client.replicasets().replicasets[0].slots_free == 0, 120, "the agents' tasks decoding")
            status = cli("--base-url", base, "status", "--repo", str(repo), "--json", timeout=60)
            loop = json.loads(status.stdout)["loop"]
            assert loop["status"] == "running" and loop["agents"]
            assert {a["role"] for a in loop["agents"]} == {"contract-writer"}
            assert all(a["item"].startswith("contract:") and "tokens" in a for a in loop["agents"])
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == ExitCode.INTERRUPTED
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sets = client.replicasets().replicasets[0]
        assert sets.slots_free == sets.slots_total and sets.queue_depth == 0  # nothing left running there
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.stdout is not None
    proc.stdout.close()
    assert "interrupted" in err and "Traceback" not in err
    events = events_of(repo)
    started = {e["task_id"] for e in events if e.get("event") == "call-started"}
    cancelled = {e["task_id"] for e in events if e.get("event") == "call-cancelled"}
    finished = {e["task_id"] for e in events if e.get("event") == "call-finished"}
    assert started and started == cancelled | finished
    # Every round that started has ended in the log; the ones cut short say so and are not tries.
    rounds = collections.Counter(e["item"] for e in events if e.get("event") == "round-started")
    ended = collections.Counter(e["item"] for e in events if e.get("event") == "round-ended")
    assert rounds and rounds == ended
    cut = [e for e in events if e.get("event") == "round-ended" and e.get("stopped")]
    assert cut and all(e["reason"] == "cut short: interrupted" and not e["merged"] for e in cut)
    run_dir = sorted((repo / ".git" / "llorch" / "runs").iterdir())[-1]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    # The caller's tree, branches and worktrees are as they were (the integration branch is new).
    now = repo_state(repo)
    assert now[0] == before[0] and now[2] == before[2]
    assert set(before[1].splitlines()) <= set(now[1].splitlines())
    assert not git(repo, "branch", "--list", "llorch/agent/*")
