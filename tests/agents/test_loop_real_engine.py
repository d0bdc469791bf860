"""The loop on the real embedded engine: a bounded smoke run of the README's main command.

``llama-orch loop demo`` (``scripts/run``) as a process: it starts orchestratord on the embedded
default (Gemma 3 270M and SmolLM2-135M-Instruct, each a managed llama-server), copies
``examples/tinykit`` into a new git repository and runs the loop on it within a time and a token
budget. The tiny models write poor code; what is checked is that the loop handles that:

- no crash (exit 0, no traceback);
- every model call the run started ended (finished, cancelled, or failed with the backend's error
  code recorded), and every malformed answer was asked again at most ``model_attempts`` times, each
  attempt's error recorded;
- the token budget holds as orchestratord counts it (the run's session on the server);
- the integration branch still passes its gates: every contract on it is valid, and every failing
  test is for a requirement whose code is still to come (the loop's ratchet), judged here on a
  fresh checkout with pytest run anew.

How many work items the models got merged is printed (``-s`` shows it) and is not asserted: it is a
property of the models, not of the loop.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llama_orch.agents._contract_check import check_contract, files
from llama_orch.agents._gates import run_gate
from llama_orch.agents._loop_config import load_loop_config
from llama_orch.agents._planner import citations_by_node, read_failures
from llama_orch.agents._verdict import judge_tests
from tests._engine import gemma_model, smollm2_model
from tests.cli.conftest import CLI, clean_env

pytestmark = [pytest.mark.real_engine, pytest.mark.subprocess]

BUDGET_TOKENS = 2500
BUDGET_TIME_S = 240


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.timeout(BUDGET_TIME_S + 420)
def test_a_bounded_loop_on_the_embedded_models(tmp_path: Path) -> None:
    gemma_model(), smollm2_model()  # skip (CI: fail) without the engine and the models
    done = subprocess.run(
        [str(CLI), "--json", "loop", "demo", "--dir", str(tmp_path / "demo"),
         "--budget-time", str(BUDGET_TIME_S), "--budget-tokens", str(BUDGET_TOKENS)],
        env=clean_env(), capture_output=True, text=True, timeout=BUDGET_TIME_S + 360,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    summary = json.loads(done.stdout)
    repo = Path(summary["demo"]["repository"])
    print(f"\nloop on the embedded models: {summary['demo']['outcome']}; status {summary['status']} "
          f"({summary['reason']}); {summary['model_calls']} model calls, {summary['tokens_spent']} tokens")  # fmt: skip
    assert summary["status"] in ("done", "stopped", "stalled", "incomplete"), summary["reason"]
    assert summary["model_calls"] > 0

    # The budget, as the server counts it.
    server = summary["server_session"]
    assert server is not None and server["budget"]["tokens_limit"] == BUDGET_TOKENS
    assert server["budget"]["tokens_used"] <= BUDGET_TOKENS
    assert summary["tokens_spent"] == server["budget"]["tokens_used"]

    # Every call ended; malformed answers asked again within bounds, every attempt recorded.
    config, _ = load_loop_config(repo)
    run_dir = next((repo / ".git" / "llorch" / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    started = {e["task_id"] for e in events if e["event"] == "call-started"}
    ended = {e["task_id"] for e in events if e["event"] in ("call-finished", "call-cancelled", "call-failed")}
    assert started and started == ended
    # A call the backend ended with an error (a first-token or decode timeout on a loaded machine)
    # is recorded with its code, and its item's round ends with that reason.
    for e in (e for e in events if e["event"] == "call-failed"):
        assert e["code"] and e["message"], e
        assert any(r["event"] == "round-ended" and r["item"] == e["item"] for r in events), e
    for e in (e for e in events if e["event"] == "malformed"):
        assert 1 <= e["attempts"] <= config.model_attempts and len(e["errors"]) == e["attempts"]
        assert all(e["errors"]), e
        rounds = [r for r in events if r["event"] == "round-ended" and r["item"] == e["item"]]
        assert rounds, f"no round of {e['item']} ended after its malformed answer"

    # The integration branch passes its gates, judged anew on a clean checkout.
    check = tmp_path / "check"
    git(repo, "worktree", "add", "--quiet", "--detach", str(check), summary["integration_branch"])
    problems = [(f, p) for f in files([check / d for d in config.contracts]) for p in check_contract(f)]
    assert not problems
    results = {}
    for spec in config.gate_specs(sys.executable):  # the repository's gates, as the loop runs them
        result = asyncio.run(run_gate(spec, check, subject="integration"))
        assert result.returncode is not None, result.reason  # it ran to its end (not timed out or killed)
        results[spec.name] = (spec, result)
    spec, tests = results["tests"]
    failures = read_failures(tests, spec, check)
    states = summary["item_states"]
    requirements = sorted({item.split(":", 1)[1] for item in states})
    still_open = [r for r in requirements if states.get(f"code:{r}") != "merged"]
    verdict = judge_tests(failures, citations_by_node(check, config, requirements), still_open)
    assert verdict.ok, f"{verdict.reason}\n{tests.stdout[-3000:]}"
    assert all(r.status == "pass" for name, (_, r) in results.items() if name != "tests"), results
    git(repo, "worktree", "remove", "--force", str(check))
