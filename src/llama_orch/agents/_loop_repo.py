"""The target repository as the loop sees it: checks made before anything is touched, and snapshots.

Every check here only reads: a loop command that refuses a repository (not a git repository, a
dirty tree, an integration branch that has diverged from HEAD) leaves its files and refs exactly
as they were. The loop then works from commits, not from the caller's worktree: the run's base is
the caller's HEAD (or the integration branch when it already holds HEAD), and what the planner
reads is a snapshot of a commit in a temporary folder.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from llama_orch.agents._git import Git, GitError, require_git

__all__ = ["Repo", "RepositoryError", "open_repo", "snapshot"]


class RepositoryError(Exception):
    """The repository cannot be worked on as it is; the message says what to do."""


@dataclass(frozen=True)
class Repo:
    """A checked repository: its top folder, git's common dir, HEAD, and the run's base commit."""

    root: Path
    common_dir: Path
    head: str
    head_branch: str | None
    integration_branch: str
    integration_head: str | None
    """Where the integration branch points now (None: it does not exist yet)."""
    git: Git

    @property
    def base(self) -> str:
        """What the loop builds on: the integration branch when it holds HEAD, else HEAD."""
        return self.integration_head or self.head

    @property
    def llorch_dir(self) -> Path:
        """``<git-common-dir>/llorch``: run state, outside every working tree."""
        return self.common_dir / "llorch"


async def open_repo(path: str | Path, *, integration_branch: str, require_clean: bool = True) -> Repo:
    """Check ``path`` and describe it; :class:`RepositoryError` when the loop must not work there."""
    where = await asyncio.to_thread(lambda: Path(path).expanduser())
    if not await asyncio.to_thread(where.is_dir):
        raise RepositoryError(f"{where} is not a folder")
    git = Git(where, timeout_s=60)
    try:
        await require_git(git)
    except GitError as exc:
        raise RepositoryError(str(exc)) from None
    inside = await git("rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise RepositoryError(f"{where} is not inside a git repository (run `git init` and commit the spec first)")
    root = Path(await git.out("rev-parse", "--show-toplevel"))
    git = git.at(root)
    common = Path(await git.out("rev-parse", "--path-format=absolute", "--git-common-dir"))
    head = await git.rev("HEAD")
    if head is None:
        raise RepositoryError(f"{root} has no commit yet: commit the spec first")
    branch = (await git("symbolic-ref", "--quiet", "--short", "HEAD", check=False)).stdout.strip() or None
    if require_clean:
        status = await git.out("status", "--porcelain=v1", "--untracked-files=normal")
        if status.strip():
            shown = ", ".join(line[3:] for line in status.splitlines()[:5])
            raise RepositoryError(
                f"the working tree of {root} has changes not committed ({shown}): commit or stash them first, "
                "the loop builds on commits"
            )
    ref = f"refs/heads/{integration_branch}"
    check = await git("check-ref-format", ref, check=False)
    if check.returncode != 0:
        raise RepositoryError(f"integration_branch {integration_branch!r} is not a valid branch name")
    if branch == integration_branch:
        raise RepositoryError(
            f"HEAD is the integration branch {integration_branch!r}, which the merge queue advances: check out "
            "another branch (e.g. `git switch -c work`)"
        )
    current = await git.rev(ref)
    integration_head: str | None = None
    if current is not None:
        if await _is_ancestor(git, head, current):
            integration_head = current  # it holds HEAD: go on from its progress
        elif await _is_ancestor(git, current, head):
            integration_head = None  # HEAD moved on (the caller merged it): start from HEAD
        else:
            raise RepositoryError(
                f"the integration branch {integration_branch!r} has diverged from HEAD: merge it into your branch "
                f"(`git merge {integration_branch}`) or delete it (`git branch -D {integration_branch}`)"
            )
    return Repo(root, common, head, branch, integration_branch, integration_head, git)


async def _is_ancestor(git: Git, a: str, b: str) -> bool:
    result = await git("merge-base", "--is-ancestor", a, b, check=False, ok_codes=(0, 1))
    return result.returncode == 0


async def snapshot(git: Git, commit: str, dest: Path) -> Path:
    """The tree of ``commit`` written under ``dest`` (``git archive``; no index or worktree touched)."""
    data = await _archive(git, commit)

    def extract() -> None:
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")

    await asyncio.to_thread(extract)
    return dest


async def _archive(git: Git, commit: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "git", "archive", "--format=tar", commit,
        cwd=git.cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), git.timeout_s)
    if proc.returncode != 0:
        raise GitError(("git", "archive", commit), proc.returncode, err.decode(errors="replace"))
    return out
