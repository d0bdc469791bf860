"""Workspaces with real git: one worktree and branch per agent, trailers, cleanup, typed git errors."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from llama_orch.agents._git import Git, GitError, GitVersionError
from llama_orch.agents._trailers import Trailers, read_trailers
from llama_orch.agents._workspace import NothingToCommitError, Workspace, WorkspaceError, WorkspaceManager

from ._gitrepo import git, make_repo


async def test_each_agent_gets_its_own_worktree_and_branch_off_integration(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    async with WorkspaceManager(repo) as manager:
        integration = git(repo, "rev-parse", "llorch/integration")
        assert integration == git(repo, "rev-parse", "main")
        a, b = await asyncio.gather(manager.create("a1"), manager.create("a2"))
        assert (a.branch, b.branch) == ("llorch/agent/a1", "llorch/agent/a2")
        assert a.path != b.path and a.path.is_dir() and b.path.is_dir()
        listed = git(repo, "worktree", "list", "--porcelain")
        assert f"worktree {a.path}" in listed and "branch refs/heads/llorch/agent/a2" in listed
        assert await a.head() == await b.head() == integration
        # The worktrees are out of the main checkout: nothing shows up there.
        assert git(repo, "status", "--porcelain") == ""
        (a.path / "only-a.txt").write_text("a\n")
        assert not (b.path / "only-a.txt").exists()
        assert await a.changed_paths() == ["only-a.txt"]


async def test_commit_carries_trailers_that_git_reads_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    async with WorkspaceManager(repo) as manager:
        ws = await manager.create("coder-1")
        (ws.path / "feature.txt").write_text("feature\n")
        trailers = Trailers(
            requirements=["AUTH-0001", "AUTH-0002"], run_id="run-7", artifact_ids=["sha256:" + "a" * 64], seed=42
        )
        commit = await ws.commit("Add the feature\n\nBody text.", trailers)
        assert commit == git(repo, "rev-parse", "llorch/agent/coder-1")
        # git itself parses them as trailers (what the traceability index reads).
        reqs = git(repo, "log", "-1", "--format=%(trailers:key=Requirement,valueonly)", commit)
        assert reqs.splitlines() == ["AUTH-0001", "AUTH-0002"]
        assert git(repo, "log", "-1", "--format=%(trailers:key=Seed,valueonly)", commit) == "42"
        assert await read_trailers(manager.git, commit) == [
            ("Requirement", "AUTH-0001"),
            ("Requirement", "AUTH-0002"),
            ("Run-Id", "run-7"),
            ("Artifact-Id", "sha256:" + "a" * 64),
            ("Seed", "42"),
        ]
        assert git(repo, "log", "-1", "--format=%an <%ae>", commit) == "llama-orch coder-1 <coder-1@llama-orch.invalid>"
        assert git(repo, "show", "--format=", "--name-only", commit) == "feature.txt"
        # The integration branch did not move: only the merge queue moves it.
        assert git(repo, "rev-parse", "llorch/integration") == git(repo, "rev-parse", "main")


async def test_commit_without_changes_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    async with WorkspaceManager(repo) as manager:
        ws = await manager.create("idle")
        with pytest.raises(NothingToCommitError):
            await ws.commit("nothing")


@pytest.mark.parametrize(
    "trailers",
    [Trailers(requirements=["A-1\nSigned-off-by: mallory"]), Trailers(run_id=" "), Trailers(extra=[("Bad Key", "x")])],
)
def test_malformed_trailers_are_refused(trailers: Trailers) -> None:
    with pytest.raises(ValueError, match="trailer"):
        trailers.pairs()


async def test_cleanup_removes_worktrees_and_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    manager = await WorkspaceManager(repo).open()
    workspaces = [await manager.create(f"a{i}") for i in range(3)]
    (workspaces[0].path / "dirty.txt").write_text("uncommitted\n")
    await manager.remove(workspaces[1], delete_branch=False)
    assert not workspaces[1].path.exists()
    assert git(repo, "branch", "--list", "llorch/agent/a1") != ""
    await manager.cleanup()
    for ws in workspaces:
        assert not ws.path.exists()
    assert git(repo, "branch", "--list", "llorch/agent/a0", "llorch/agent/a2") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    # The integration branch stays: it is the product.
    assert git(repo, "branch", "--list", "llorch/integration") != ""


async def test_bad_agent_ids_and_duplicates_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    async with WorkspaceManager(repo) as manager:
        for bad in ["", "../escape", "a b", "-rf", "x" * 65]:
            with pytest.raises(ValueError, match="agent id"):
                await manager.create(bad)
        await manager.create("same")
        with pytest.raises(WorkspaceError, match="already exists"):
            await manager.create("same")


async def test_integration_branch_checked_out_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "--quiet", "-b", "llorch/integration")
    with pytest.raises(WorkspaceError, match="checked out"):
        await WorkspaceManager(repo).open()


async def test_custom_integration_branch_and_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "--quiet", "-m", "later")
    manager = WorkspaceManager(repo, integration_branch="team/int", worktrees_dir=tmp_path / "wt")
    await manager.open(base=first)
    try:
        assert git(repo, "rev-parse", "team/int") == first
        ws = await manager.create("x")
        assert ws.path.parent == tmp_path / "wt"
        assert not (ws.path / "later.txt").exists()
    finally:
        await manager.cleanup()


async def test_git_failures_are_typed_with_command_and_stderr(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    with pytest.raises(GitError) as caught:
        await Git(repo)("rev-parse", "--verify", "no-such-branch")
    assert caught.value.argv == ("git", "rev-parse", "--verify", "no-such-branch")
    assert caught.value.returncode == 128
    assert "no-such-branch" in caught.value.stderr or "Needed a single revision" in caught.value.stderr
    with pytest.raises(GitError) as caught:
        await Git(tmp_path)("status")  # not a repository
    assert "not a git repository" in caught.value.stderr


async def test_git_too_old_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "git"
    script.write_text('#!/bin/sh\necho "git version 2.37.1"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(GitVersionError, match=r"git 2\.37 is too old.*>= 2\.38"):
        await WorkspaceManager(repo).open()


async def test_git_commands_are_killed_at_their_time_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "git"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(GitError, match="timed out"):
        await Git(tmp_path, timeout_s=0.5)("status")


WORKSPACE_SURFACE = {
    "AgentArtifacts", "StoredArtifact", "SyncReport", "GateConfigError", "GateResult", "GateSpec", "load_gates",
    "load_gates_at", "parse_gates", "run_gate", "run_gates", "MIN_GIT_VERSION", "Git", "GitError", "GitVersionError",
    "GateRunner", "MergeDecision", "MergePreview", "MergeQueue", "preview_merge", "redact_secrets", "Isolation",
    "Limits", "SandboxRun", "SandboxSupport", "probe_support", "run_sandboxed", "Trailers", "read_trailers",
    "with_trailers", "DEFAULT_BRANCH_PREFIX", "DEFAULT_INTEGRATION_BRANCH", "NothingToCommitError", "Workspace",
    "WorkspaceError", "WorkspaceManager",
}  # fmt: skip


def test_workspace_merge_gate_and_artifact_names_are_public() -> None:
    import llama_orch.agents as agents

    assert set(agents.__all__) >= WORKSPACE_SURFACE
    for name in WORKSPACE_SURFACE:
        assert getattr(agents, name) is not None


async def test_eight_workspaces_at_once_do_not_race_on_git_locks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    async with WorkspaceManager(repo) as manager:
        spaces = await asyncio.gather(*(manager.create(f"p{n}") for n in range(8)))
        assert len({ws.path for ws in spaces}) == 8

        async def work(ws: Workspace) -> str:
            (ws.path / f"{ws.agent_id}.txt").write_text("mine\n")
            return await ws.commit(f"work of {ws.agent_id}", Trailers(requirements=["APP-0001"]))

        commits = await asyncio.gather(*(work(ws) for ws in spaces))
        assert len(set(commits)) == 8
        await asyncio.gather(*(manager.remove(ws) for ws in spaces))
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        assert git(repo, "branch", "--list", "llorch/agent/*") == ""
