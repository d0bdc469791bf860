"""The strkit example as a fresh git repository, and the scripted engine that answers its loop."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from llama_orch.engines.mock import MockSettings
from llama_orch.server.config import OrchestratorConfig, PoolConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "strkit"
SCRIPT = ROOT / "tests" / "agents" / "fixtures" / "strkit.script.yaml"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def strkit_repo(root: Path, name: str = "strkit", files: dict[str, str] | None = None) -> Path:
    """A copy of examples/strkit committed on `main` (plus ``files``, committed too)."""
    repo = root / name
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".llorch-out"))
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "config", "commit.gpgsign", "false")
    for path, text in (files or {}).items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    commit_all(repo, "the spec")
    return repo


def repo_state(repo: Path) -> tuple[str, str, str]:
    """What must not change when a command refuses to work: the tree's status, every ref, the worktrees."""
    return (
        git(repo, "status", "--porcelain=v1", "--untracked-files=all", "--ignored"),
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(repo, "worktree", "list", "--porcelain"),
    )


def scripted_config(**mock: Any) -> OrchestratorConfig:
    """One mock pool `default` answering from the strkit script."""
    mock.setdefault("tokens_per_s", 2000)
    mock.setdefault("first_token_ms", 1)
    mock.setdefault("slots", 2)
    settings = MockSettings(script=str(SCRIPT), **mock)
    return OrchestratorConfig(
        server={"heartbeat_s": 0.2, "metrics_interval_s": 0.1}, pools=[PoolConfig(id="default", mock=settings)]
    )
