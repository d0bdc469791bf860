"""Per-agent git workspaces: one worktree and one branch per agent, forked off the integration branch.

The integration branch is never checked out: the merge queue advances it with a compare-and-swap
``git update-ref``, so a worktree holding it would go stale under its user's feet; :meth:`open`
refuses a repository where it is checked out. Worktrees live, by default, in
``<git-common-dir>/llorch-worktrees`` so they never show up in the main checkout (nor in its test
discovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from llama_orch.agents._git import Git, require_git
from llama_orch.agents._trailers import Trailers, with_trailers

__all__ = [
    "DEFAULT_BRANCH_PREFIX",
    "DEFAULT_INTEGRATION_BRANCH",
    "NothingToCommitError",
    "Workspace",
    "WorkspaceError",
    "WorkspaceManager",
]

DEFAULT_INTEGRATION_BRANCH = "llorch/integration"
DEFAULT_BRANCH_PREFIX = "llorch/agent/"

_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class WorkspaceError(Exception):
    """The repository or a workspace is not in a state we can work with (what to fix is in the message)."""


class NothingToCommitError(WorkspaceError):
    """A commit was asked for, but the workspace has no change."""


@dataclass(frozen=True)
class Workspace:
    """One agent's worktree and branch."""

    agent_id: str
    branch: str
    path: Path
    git: Git

    async def head(self) -> str:
        return await self.git.out("rev-parse", "HEAD")

    async def changed_paths(self) -> list[str]:
        """Paths that differ from HEAD (tracked or not, ignored files excluded)."""
        text = (await self.git("status", "--porcelain=v1", "-z", "--untracked-files=all")).stdout
        entries = text.split("\0")
        paths: list[str] = []
        i = 0
        while i < len(entries):
            entry = entries[i]
            if len(entry) > 3:
                paths.append(entry[3:])
                if entry[0] in "RC":  # a rename/copy is followed by its source path
                    i += 1
            i += 1
        return paths

    async def commit(
        self,
        message: str,
        trailers: Trailers | None = None,
        *,
        paths: Sequence[str] | None = None,
        allow_empty: bool = False,
    ) -> str:
        """Stage ``paths`` (everything when None), commit with ``trailers``, return the new commit id.

        Hooks do not run (``--no-verify``): the target repository's checks run as gates, sandboxed.
        """
        await self.git("add", "--all", "--", *(paths if paths is not None else ["."]))
        staged = await self.git("diff", "--cached", "--quiet", check=False, ok_codes=(0, 1))
        if staged.returncode == 0 and not allow_empty:
            raise NothingToCommitError(f"workspace {self.agent_id!r} has nothing to commit")
        full = await with_trailers(self.git, message, trailers or Trailers())
        args = ["-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-F", "-"]
        if allow_empty:
            args.append("--allow-empty")
        await self.git(*args, input=full)
        return await self.head()


class WorkspaceManager:
    """Creates, tracks and removes agent workspaces in one repository.

    >>> async with WorkspaceManager("/repo") as manager:          # doctest: +SKIP
    ...     ws = await manager.create("agent-1")
    ...     (ws.path / "x.py").write_text("print('hi')\\n")
    ...     await ws.commit("Add x", Trailers(requirements=["APP-0001"], run_id="r1", seed=7))
    """

    def __init__(
        self,
        repo: str | os.PathLike[str],
        *,
        integration_branch: str = DEFAULT_INTEGRATION_BRANCH,
        branch_prefix: str = DEFAULT_BRANCH_PREFIX,
        worktrees_dir: str | os.PathLike[str] | None = None,
        identity: tuple[str, str] | None = None,
        git_timeout_s: float = 120.0,
    ) -> None:
        self.repo = Path(repo)
        self.integration_branch = integration_branch
        self.branch_prefix = branch_prefix
        self._worktrees_dir = None if worktrees_dir is None else Path(worktrees_dir)
        self._identity = identity
        self.git = Git(self.repo, timeout_s=git_timeout_s)
        self._admin = asyncio.Lock()  # worktree and branch administration, one at a time per repository
        self._workspaces: dict[str, Workspace] = {}
        self._scratch_ids = itertools.count(1)
        self._opened = False

    @property
    def integration_ref(self) -> str:
        return f"refs/heads/{self.integration_branch}"

    @property
    def worktrees_dir(self) -> Path:
        if self._worktrees_dir is None:
            raise WorkspaceError("the workspace manager is not open")
        return self._worktrees_dir

    @property
    def workspaces(self) -> dict[str, Workspace]:
        return dict(self._workspaces)

    async def open(self, *, base: str = "HEAD") -> Self:
        """Check git, and create the integration branch at ``base`` unless it exists."""
        await require_git(self.git)
        common = Path(await self.git.out("rev-parse", "--path-format=absolute", "--git-common-dir"))
        if self._worktrees_dir is None:
            self._worktrees_dir = common / "llorch-worktrees"
        self._worktrees_dir.mkdir(parents=True, exist_ok=True)
        await self.git("check-ref-format", self.integration_ref)
        if await self.git.rev(self.integration_ref) is None:
            start = await self.git.rev(base)
            if start is None:
                raise WorkspaceError(f"cannot create {self.integration_branch!r}: {base!r} names no commit")
            await self.git("update-ref", self.integration_ref, start, "")
        holder = await self._checked_out_at(self.integration_ref)
        if holder is not None:
            raise WorkspaceError(
                f"the integration branch {self.integration_branch!r} is checked out at {holder}; merges advance it "
                "with update-ref, which would leave that worktree stale: check out another branch there"
            )
        self._opened = True
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cleanup()

    async def integration_head(self) -> str:
        head = await self.git.rev(self.integration_ref)
        if head is None:
            raise WorkspaceError(f"the integration branch {self.integration_branch!r} is gone")
        return head

    async def create(self, agent_id: str, *, start: str | None = None) -> Workspace:
        """A new worktree on a new branch ``<branch_prefix><agent_id>`` at the integration head (or ``start``)."""
        self._require_open()
        if not _AGENT_ID.fullmatch(agent_id):
            raise ValueError(f"agent id {agent_id!r} must match {_AGENT_ID.pattern}")
        branch = self.branch_prefix + agent_id
        path = self.worktrees_dir / agent_id
        async with self._admin:
            if agent_id in self._workspaces or path.exists():
                raise WorkspaceError(f"a workspace for agent {agent_id!r} already exists at {path}")
            await self.git("check-ref-format", f"refs/heads/{branch}")
            at = start if start is not None else await self.integration_head()
            await self.git("worktree", "add", "--quiet", "-b", branch, str(path), at)
            workspace = Workspace(agent_id, branch, path, self.git.at(path).with_env(self._author(agent_id)))
            self._workspaces[agent_id] = workspace
        return workspace

    async def remove(self, workspace: Workspace, *, delete_branch: bool = True) -> None:
        """Remove the worktree (and, by default, its branch); changes not committed are lost."""
        async with self._admin:
            await self._remove(workspace.path, workspace.branch if delete_branch else None)
            self._workspaces.pop(workspace.agent_id, None)

    async def cleanup(self) -> None:
        """Remove every workspace this manager created, with its branch, and prune stale worktree records."""
        for workspace in list(self._workspaces.values()):
            await self.remove(workspace)
        if self._opened:
            async with self._admin:
                await self.git("worktree", "prune")

    @contextlib.asynccontextmanager
    async def scratch(self, commit: str) -> AsyncIterator[Git]:
        """A detached worktree at ``commit`` for the merge queue, removed on exit whatever happens."""
        self._require_open()
        path = self.worktrees_dir / f".scratch-{os.getpid()}-{next(self._scratch_ids)}"
        async with self._admin:
            await self.git("worktree", "add", "--quiet", "--detach", str(path), commit)
        try:
            yield self.git.at(path).with_env(self._author("merge-queue"))
        finally:
            async with self._admin:
                await self._remove(path, None)

    def identity_env(self, agent_id: str) -> dict[str, str]:
        """The author and committer environment for commits made on behalf of ``agent_id``."""
        return self._author(agent_id)

    async def _remove(self, path: Path, branch: str | None) -> None:
        if await asyncio.to_thread(path.exists):
            result = await self.git("worktree", "remove", "--force", "--force", str(path), check=False)
            if result.returncode != 0:
                # Not a registered worktree any more (or half-created): delete the folder, drop the record.
                await asyncio.to_thread(shutil.rmtree, path, True)
        await self.git("worktree", "prune")
        if branch is not None and await self.git.rev(f"refs/heads/{branch}") is not None:
            await self.git("branch", "-D", "--quiet", branch)

    async def _checked_out_at(self, ref: str) -> str | None:
        text = await self.git.out("worktree", "list", "--porcelain")
        worktree = None
        for line in text.splitlines():
            if line.startswith("worktree "):
                worktree = line[len("worktree ") :]
            elif line == f"branch {ref}":
                return worktree
        return None

    def _author(self, agent_id: str) -> dict[str, str]:
        name, email = self._identity or (f"llama-orch {agent_id}", f"{agent_id}@llama-orch.invalid")
        return {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }

    def _require_open(self) -> None:
        if not self._opened:
            raise WorkspaceError("open the workspace manager first (`await manager.open()` or `async with`)")
