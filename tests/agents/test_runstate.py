"""Run state on disk: durable events (a torn line is skipped), atomic status, one run per repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llama_orch.agents import RunLockedError, RunState, list_runs
from llama_orch.agents._runstate import repo_lock


def test_events_status_and_listing(tmp_path: Path) -> None:
    state = RunState.create(tmp_path, {"command": "loop run"}, run_id="run-20240101-000000-aaaa")
    seen: list[str] = []
    state.listeners.append(lambda e: seen.append(e["event"]))
    state.append("plan", items=3)
    state.append("decision", item="code:X-0001", outcome="merged")
    state.close()
    with (state.dir / "events.jsonl").open("a") as f:
        f.write('{"event": "torn", "t"')  # what a kill -9 in the middle of a write leaves
    assert [e["event"] for e in RunState.open(tmp_path, state.run_id).events()] == ["plan", "decision"]
    assert seen == ["plan", "decision"]
    state.write_status({"status": "running", "items": {"done": 1}})
    assert state.status() == {"status": "running", "items": {"done": 1}}
    assert not list((state.dir).glob("*.tmp*"))
    assert state.info()["command"] == "loop run" and state.info()["run_id"] == state.run_id
    later = RunState.create(tmp_path, {}, run_id="run-20240102-000000-bbbb")
    assert [r.run_id for r in list_runs(tmp_path)] == [state.run_id, later.run_id]
    with pytest.raises(FileNotFoundError, match="recent runs: run-20240101"):
        RunState.open(tmp_path, "run-nope")
    json.loads((state.dir / "run.json").read_text())


def test_one_loop_per_repository(tmp_path: Path) -> None:
    with repo_lock(tmp_path), pytest.raises(RunLockedError, match="another loop command"), repo_lock(tmp_path):
        pass
    with repo_lock(tmp_path):  # released when the holder is done
        pass
