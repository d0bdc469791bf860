"""Real git, through subprocesses: one async runner, and git's failures as typed exceptions.

::

    GitError                    git ran and failed: the command, its exit status and stderr
    └── GitVersionError         the installed git is too old for what we ask of it

Every command runs with a time limit (its process group is killed past it), a fixed C locale so
that what we parse does not depend on the user's language, no pager and no terminal prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_GIT_VERSION", "Git", "GitError", "GitResult", "GitVersionError", "git_version", "require_git"]

MIN_GIT_VERSION = (2, 38)
"""``git merge-tree --write-tree`` (the conflict pre-check that touches no worktree) arrived in 2.38."""

DEFAULT_GIT_TIMEOUT_S = 120.0

_BASE_ENV = {
    "LC_ALL": "C",
    "LANGUAGE": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "GIT_EDITOR": "true",
    "GIT_OPTIONAL_LOCKS": "0",
}


class GitError(Exception):
    """A git command failed: ``argv``, ``returncode`` (None if it was killed at its time limit), ``stderr``."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str, *, cwd: Path | None = None) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.cwd = cwd
        status = "timed out" if returncode is None else f"exit status {returncode}"
        detail = stderr.strip() or "(no stderr)"
        super().__init__(f"`{' '.join(self.argv)}` failed ({status}): {detail}")


class GitVersionError(GitError):
    """The installed git is older than :data:`MIN_GIT_VERSION`."""


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


class Git:
    """Runs git in one repository (or worktree) directory.

    >>> git = Git("/path/to/repo")                      # doctest: +SKIP
    >>> (await git("rev-parse", "HEAD")).stdout.strip()  # doctest: +SKIP
    """

    def __init__(
        self,
        cwd: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_GIT_TIMEOUT_S,
    ) -> None:
        self.cwd = Path(cwd)
        self._env = {**os.environ, **_BASE_ENV, **(env or {})}
        self.timeout_s = timeout_s

    def at(self, cwd: str | os.PathLike[str]) -> Git:
        """The same settings in another directory (a worktree of the same repository)."""
        twin = Git(cwd, timeout_s=self.timeout_s)
        twin._env = self._env
        return twin

    def with_env(self, env: Mapping[str, str]) -> Git:
        """The same directory and settings, with ``env`` added to every command's environment."""
        twin = self.at(self.cwd)
        twin._env = {**self._env, **env}
        return twin

    async def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        ok_codes: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
    ) -> GitResult:
        """Run ``git <args>``; raise :class:`GitError` unless its exit status is in ``ok_codes``."""
        argv = ("git", *args)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.cwd,
            env={**self._env, **(env or {})},
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            data = input.encode() if input is not None else None
            out, err = await asyncio.wait_for(proc.communicate(data), self.timeout_s)
        except TimeoutError:
            raise GitError(argv, None, f"killed after {self.timeout_s:g} s", cwd=self.cwd) from None
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                await proc.wait()
        assert proc.returncode is not None
        result = GitResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and result.returncode not in ok_codes:
            raise GitError(argv, result.returncode, result.stderr, cwd=self.cwd)
        return result

    async def out(self, *args: str, input: str | None = None) -> str:
        """Stdout of a command that must succeed, without its trailing newline."""
        return (await self(*args, input=input)).stdout.rstrip("\n")

    async def rev(self, rev: str) -> str | None:
        """The commit id ``rev`` names, or None when it names nothing."""
        result = await self("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return result.stdout.strip() if result.returncode == 0 else None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_VERSION = re.compile(r"git version (\d+)\.(\d+)")


async def git_version(git: Git | None = None) -> tuple[int, int]:
    """The installed git's (major, minor)."""
    text = (await (git or Git(Path.cwd()))("--version")).stdout
    match = _VERSION.search(text)
    if match is None:
        raise GitVersionError(("git", "--version"), 0, f"cannot read a version from {text.strip()!r}")
    return int(match.group(1)), int(match.group(2))


async def require_git(git: Git, minimum: tuple[int, int] = MIN_GIT_VERSION) -> None:
    """Raise :class:`GitVersionError` when git is older than ``minimum``."""
    found = await git_version(git)
    if found < minimum:
        need = ".".join(map(str, minimum))
        raise GitVersionError(
            ("git", "--version"),
            0,
            f"git {found[0]}.{found[1]} is too old: llama-orch needs git >= {need} (`git merge-tree --write-tree`)",
        )
