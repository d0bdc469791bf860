"""Real git repositories in tmp_path for the workspace, merge-queue and gate tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A cheap gate: every *.txt file in the checkout must not say BROKEN (a stand-in for a test suite).
CHECK_SCRIPT = """\
import pathlib, sys
bad = [str(p) for p in sorted(pathlib.Path('.').rglob('*.txt')) if 'BROKEN' in p.read_text()]
if bad:
    print('FAILED ' + ' '.join(f'{b}::content' for b in bad))
    sys.exit(1)
print('ok', len(list(pathlib.Path('.').rglob('*.txt'))), 'files')
"""


def git(repo: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, input=input, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def gates_toml(*gates: str) -> str:
    return "\n".join(gates)


def check_gate(name: str = "check", timeout_s: float = 60) -> str:
    argv = [sys.executable, "check.py"]
    return f'[[gates]]\nname = "{name}"\nkind = "tests"\nargv = {argv!r}\ntimeout_s = {timeout_s}\n'.replace("'", '"')


def make_repo(root: Path, files: dict[str, str] | None = None, *, gates: str | None = None) -> Path:
    """A repository on `main` with one commit holding `files` (and `.llorch/gates.toml` when given)."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "config", "commit.gpgsign", "false")
    content = {"check.py": CHECK_SCRIPT, "README.txt": "hello\n", **(files or {})}
    if gates is not None:
        content[".llorch/gates.toml"] = gates
    for path, text in content.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "initial")
    return repo


def show(repo: Path, rev: str, path: str) -> str | None:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None
