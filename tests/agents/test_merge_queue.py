"""The merge queue with real git: parallel agents, conflicts caught before merging, failing gates kept out,
the integration branch passing its gates after every merge, and a concurrent advance never lost."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from llama_orch.agents._gates import GateResult, GateSpec, load_gates, run_gates
from llama_orch.agents._merge import MergeQueue, preview_merge
from llama_orch.agents._trailers import Trailers
from llama_orch.agents._workspace import WorkspaceManager

from ._gitrepo import check_gate, git, make_repo, show


async def _gates_pass_at(repo: Path, commit: str, tmp_path: Path) -> list[GateResult]:
    """Check out `commit` on its own and run the gates it declares (what "the branch passes" means)."""
    checkout = tmp_path / f"verify-{commit[:12]}"
    git(repo, "worktree", "add", "--quiet", "--detach", str(checkout), commit)
    try:
        gates = load_gates(checkout)
        assert gates, "the repository declares gates"
        return await run_gates(gates, checkout, subject=commit)
    finally:
        git(repo, "worktree", "remove", "--force", str(checkout))


async def test_four_agents_in_parallel_all_merged_and_integration_always_green(tmp_path: Path) -> None:
    shared = "".join(f"section {n}\n" for n in range(16))
    repo = make_repo(tmp_path, {"shared.txt": shared}, gates=check_gate())
    async with WorkspaceManager(repo) as manager:
        start = await manager.integration_head()
        queue = MergeQueue(manager, run_id="run-4")

        async def agent(i: int) -> tuple[str, str]:
            ws = await manager.create(f"agent-{i}")
            (ws.path / f"feature_{i}.txt").write_text(f"feature {i}\n")
            lines = (ws.path / "shared.txt").read_text().splitlines()
            lines[4 * i] += f" (edited by agent {i})"  # each agent edits its own section of a shared file
            (ws.path / "shared.txt").write_text("\n".join(lines) + "\n")
            await ws.commit(f"Agent {i} work", Trailers(requirements=[f"REQ-{i:04d}"], seed=100 + i))
            decision = await queue.submit(ws.branch)
            return decision.outcome, decision.reason

        outcomes = await asyncio.gather(*(agent(i) for i in range(4)))
        assert [o for o, _ in outcomes] == ["merged"] * 4, outcomes

        head = await manager.integration_head()
        # Merged one at a time: a first-parent chain of 4 merge commits, each with the candidate as 2nd parent.
        chain = git(repo, "rev-list", "--first-parent", f"{start}..{head}").split()
        assert len(chain) == 4
        for commit in chain:
            assert len(git(repo, "rev-list", "--parents", "-n1", commit).split()) == 3
        merged = show(repo, head, "shared.txt")
        assert merged is not None
        assert all(f"(edited by agent {i})" in merged for i in range(4))
        for i in range(4):
            assert show(repo, head, f"feature_{i}.txt") == f"feature {i}\n"
        # Every merge commit kept its candidate's trailers and names the run.
        requirements = git(repo, "log", "--first-parent", "--format=%(trailers:key=Requirement,valueonly)", head)
        assert sorted(r for r in requirements.split() if r) == [f"REQ-{i:04d}" for i in range(4)]
        assert set(git(repo, "log", "--first-parent", "--format=%(trailers:key=Run-Id,valueonly)", f"{start}..{head}")
                   .split()) == {"run-4"}  # fmt: skip
        # The integration branch passes its gates after every successful merge, not only at the end.
        for commit in chain:
            results = await _gates_pass_at(repo, commit, tmp_path)
            assert [r.status for r in results] == ["pass"], [r.reason for r in results]
        # No scratch worktree is left behind.
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1 + 4


async def test_conflict_is_found_before_merging_and_rejected(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"config.txt": "mode = fast\n"}, gates=check_gate())
    calls: list[str] = []

    async def counting_runner(gates: Sequence[GateSpec], checkout: Path, subject: str) -> list[GateResult]:
        calls.append(subject)
        return await run_gates(gates, checkout, subject=subject)

    async with WorkspaceManager(repo) as manager:
        queue = MergeQueue(manager, runner=counting_runner)
        a, b = await manager.create("a"), await manager.create("b")
        (a.path / "config.txt").write_text("mode = safe\n")
        (b.path / "config.txt").write_text("mode = turbo\n")
        await a.commit("safe mode")
        await b.commit("turbo mode")
        # The pre-check alone, in the object database.
        preview = await preview_merge(manager.git, await manager.integration_head(), await b.head())
        assert preview.clean
        first = await queue.submit(a.branch)
        assert first.outcome == "merged"
        head = await manager.integration_head()
        preview = await preview_merge(manager.git, head, await b.head())
        assert preview.conflicts == ("config.txt",)
        assert any("CONFLICT" in m for m in preview.messages)
        worktrees_before = git(repo, "worktree", "list", "--porcelain")

        second = await queue.submit(b.branch)
        assert second.outcome == "conflict" and not second.accepted
        assert second.conflicts == ("config.txt",)
        assert "config.txt" in second.reason
        assert await manager.integration_head() == head  # never reached the integration branch
        assert show(repo, head, "config.txt") == "mode = safe\n"
        assert len(calls) == 1  # no gate ran, no scratch worktree was made for the conflicting one
        assert git(repo, "worktree", "list", "--porcelain") == worktrees_before
        assert git(repo, "status", "--porcelain") == "" and (b.path / "config.txt").read_text() == "mode = turbo\n"


async def test_failing_gates_keep_a_candidate_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=check_gate())
    async with WorkspaceManager(repo) as manager:
        queue = MergeQueue(manager)
        ws = await manager.create("breaker")
        (ws.path / "notes.txt").write_text("this is BROKEN\n")
        await ws.commit("break things")
        before = await manager.integration_head()
        decision = await queue.submit(ws.branch)
        assert decision.outcome == "gates-failed" and not decision.accepted
        assert decision.merge_commit is None
        assert [r.status for r in decision.gate_results] == ["fail"]
        assert decision.gate_results[0].failing_tests == ("notes.txt::content",)
        assert "gate check: fail" in decision.reason
        assert await manager.integration_head() == before
        assert show(repo, "llorch/integration", "notes.txt") is None
        # The merged tree that failed was the real merge of the two.
        assert decision.merged_tree == git(repo, "merge-tree", "--write-tree", before, ws.branch)


async def test_a_candidate_cannot_switch_its_own_gates_off(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=check_gate())
    async with WorkspaceManager(repo) as manager:
        ws = await manager.create("sneaky")
        (ws.path / ".llorch" / "gates.toml").write_text("")
        (ws.path / "notes.txt").write_text("BROKEN\n")
        await ws.commit("remove the gates and break things")
        decision = await MergeQueue(manager).submit(ws.branch)
        assert decision.outcome == "gates-failed"  # the gates were read from the integration head


async def test_pytest_gate_names_the_failing_tests_from_junit(tmp_path: Path) -> None:
    gates = (
        '[[gates]]\nname = "pytest"\nkind = "tests"\ntimeout_s = 120\n'
        f'argv = ["{sys.executable}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=out/junit.xml"]\n'
        'junit_xml = "out/junit.xml"\n'
    )
    files = {
        "calc.py": "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n",
        "test_calc.py": "from calc import add, mul\n\ndef test_add():\n    assert add(2, 2) == 4\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n",
    }
    repo = make_repo(tmp_path, files, gates=gates)
    async with WorkspaceManager(repo) as manager:
        queue = MergeQueue(manager)
        bad = await manager.create("bad")
        (bad.path / "calc.py").write_text("def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n")
        await bad.commit("subtract instead")
        decision = await queue.submit(bad.branch)
        assert decision.outcome == "gates-failed"
        (result,) = decision.gate_results
        assert result.status == "fail" and result.failing_tests == ("test_calc::test_add",)
        assert "test_add" in decision.reason

        good = await manager.create("good")
        (good.path / "calc.py").write_text(files["calc.py"] + "\ndef sub(a, b):\n    return a - b\n")
        await good.commit("add sub")
        decision = await queue.submit(good.branch)
        assert decision.outcome == "merged", decision.reason
        assert decision.gate_results[0].status == "pass"


async def test_a_concurrent_advance_of_the_integration_branch_is_never_lost(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=check_gate())
    async with WorkspaceManager(repo) as manager:
        intruder: list[str] = []

        async def runner_that_races(gates: Sequence[GateSpec], checkout: Path, subject: str) -> list[GateResult]:
            if not intruder:
                # Someone else (another process) advances the branch while our gates run.
                head = git(repo, "rev-parse", "llorch/integration")
                blob = git(repo, "hash-object", "-w", "--stdin", input="from elsewhere\n")
                tree = git(repo, "mktree", input=git(repo, "ls-tree", head) + f"\n100644 blob {blob}\telsewhere.txt\n")
                other = git(repo, "commit-tree", tree, "-p", head, "-m", "concurrent commit")
                git(repo, "update-ref", "refs/heads/llorch/integration", other, head)
                intruder.append(other)
            return await run_gates(gates, checkout, subject=subject)

        queue = MergeQueue(manager, runner=runner_that_races)
        ws = await manager.create("slow")
        (ws.path / "mine.txt").write_text("mine\n")
        await ws.commit("mine")
        decision = await queue.submit(ws.branch)
        assert decision.outcome == "merged" and decision.attempts == 2
        head = await manager.integration_head()
        assert git(repo, "rev-parse", f"{head}^1") == intruder[0]  # built on the concurrent commit, not over it
        assert show(repo, head, "elsewhere.txt") == "from elsewhere\n"
        assert show(repo, head, "mine.txt") == "mine\n"


async def test_gives_up_when_the_branch_never_stops_moving(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=check_gate())
    async with WorkspaceManager(repo) as manager:

        async def always_racing(gates: Sequence[GateSpec], checkout: Path, subject: str) -> list[GateResult]:
            head = git(repo, "rev-parse", "llorch/integration")
            other = git(repo, "commit-tree", f"{head}^{{tree}}", "-p", head, "-m", "noise")
            git(repo, "update-ref", "refs/heads/llorch/integration", other, head)
            return await run_gates(gates, checkout, subject=subject)

        ws = await manager.create("unlucky")
        (ws.path / "x.txt").write_text("x\n")
        await ws.commit("x")
        decision = await MergeQueue(manager, runner=always_racing, max_attempts=2).submit(ws.branch)
        assert decision.outcome == "gave-up" and decision.attempts == 2
        assert show(repo, "llorch/integration", "x.txt") is None


async def test_merges_are_serialized_first_come_first_served(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=check_gate())
    async with WorkspaceManager(repo) as manager:
        running: list[str] = []
        overlap: list[bool] = []

        async def observing(gates: Sequence[GateSpec], checkout: Path, subject: str) -> list[GateResult]:
            overlap.append(bool(running))
            running.append(subject)
            try:
                return await run_gates(gates, checkout, subject=subject)
            finally:
                running.remove(subject)

        queue = MergeQueue(manager, runner=observing)
        branches = []
        for i in range(3):
            ws = await manager.create(f"q{i}")
            (ws.path / f"q{i}.txt").write_text(f"{i}\n")
            await ws.commit(f"q{i}")
            branches.append(ws.branch)
        tasks = []
        for n, branch in enumerate(branches, start=1):
            tasks.append(asyncio.create_task(queue.submit(branch)))
            # Wait until it is queued before submitting the next (the queue exposes a count, not an event).
            while queue.waiting < n:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        decisions = await asyncio.gather(*tasks)
        assert [d.outcome for d in decisions] == ["merged"] * 3
        assert overlap == [False, False, False]
        # The first-parent chain, oldest first, is the submission order.
        chain = git(repo, "rev-list", "--reverse", "--first-parent", "llorch/integration", "-n", "3").split()
        assert chain == [d.merge_commit for d in decisions]


async def test_a_branch_already_merged_is_up_to_date(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, gates=check_gate())
    async with WorkspaceManager(repo) as manager:
        ws = await manager.create("twice")
        (ws.path / "t.txt").write_text("t\n")
        await ws.commit("t")
        queue = MergeQueue(manager)
        assert (await queue.submit(ws.branch)).outcome == "merged"
        again = await queue.submit(ws.branch)
        assert again.outcome == "up-to-date" and again.accepted and again.merge_commit is None
        with pytest.raises(ValueError, match="names no commit"):
            await queue.submit("no/such/branch")
