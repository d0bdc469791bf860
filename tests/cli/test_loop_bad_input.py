"""Loop commands refuse bad input with a clear error and exit code, and leave the repository untouched."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from llama_orch.cli import ExitCode
from tests.agents._strkit import commit_all, git, repo_state, scripted_config, strkit_repo
from tests.cli.conftest import Cli, LiveServer, Stub
from tests.conftest import free_port

COMMANDS = [("plan",), ("loop", "run"), ("contract", "sync"), ("tests", "plan"), ("impl", "apply")]
Prepare = Callable[[Path], Path]


def no_specs(root: Path) -> Path:
    repo = strkit_repo(root)
    git(repo, "rm", "-r", "--quiet", "specs")
    commit_all(repo, "drop the spec")
    return repo


def duplicate_ids(root: Path) -> Path:
    return strkit_repo(root, files={"specs/more.md": "- [STR-0003] The library MUST do it again.\n"})


def dirty_tree(root: Path) -> Path:
    repo = strkit_repo(root)
    (repo / "specs" / "strkit.md").write_text("edited, not committed\n")
    (repo / "notes.txt").write_text("untracked\n")
    return repo


def not_a_repository(root: Path) -> Path:
    folder = root / "plain"
    folder.mkdir()
    (folder / "specs").mkdir()
    (folder / "specs" / "a.md").write_text("- [STR-0001] The library MUST exist.\n")
    return folder


def bad_config(root: Path) -> Path:
    return strkit_repo(root, files={".llama-orch.toml": "attempts = 0\n"})


def integration_checked_out(root: Path) -> Path:
    repo = strkit_repo(root)
    git(repo, "switch", "--quiet", "-c", "llorch/integration")
    return repo


CASES: list[tuple[str, Prepare, str]] = [
    ("no specs", no_specs, "no specs found"),
    ("duplicate ids", duplicate_ids, "duplicate requirement ids: STR-0003"),
    ("dirty tree", dirty_tree, "changes not committed"),
    ("not a repository", not_a_repository, "not inside a git repository"),
    ("bad config", bad_config, "attempts"),
    ("integration branch checked out", integration_checked_out, "check out another branch"),
]


def _state(path: Path) -> object:
    if not (path / ".git").exists():
        return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))
    return repo_state(path)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(("name", "prepare", "says"), CASES, ids=[c[0] for c in CASES])
def test_bad_repositories(
    cli: Cli, live_server: LiveServer, tmp_path: Path, command: tuple[str, ...], name: str, prepare: Prepare, says: str
) -> None:
    base = live_server(scripted_config())
    repo = prepare(tmp_path)
    before = _state(repo)
    result = cli(base, *command, "--repo", str(repo))
    assert result.exit_code == ExitCode.USAGE, result.stdout + result.stderr
    assert says in result.stderr
    assert _state(repo) == before
    assert not (repo / ".git" / "llorch" / "runs").exists()
    as_json = cli(base, "--json", *command, "--repo", str(repo))
    error = json.loads(as_json.stderr)["error"]
    assert error["exit_code"] == ExitCode.USAGE and says in error["message"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unreachable_backend(cli: Cli, tmp_path: Path, command: tuple[str, ...]) -> None:
    repo = strkit_repo(tmp_path)
    before = repo_state(repo)
    result = cli(f"http://127.0.0.1:{free_port()}", *command, "--repo", str(repo))
    assert result.exit_code == ExitCode.CONNECT and "cannot connect" in result.stderr
    assert repo_state(repo) == before and not (repo / ".git" / "llorch" / "runs").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_incompatible_backend(cli: Cli, stub: Stub, tmp_path: Path, command: tuple[str, ...]) -> None:
    stub.answer("GET", "/v1/capabilities", 200, {"api_version": "9.0.0", "pools": [], "sampler_profiles": []})
    repo = strkit_repo(tmp_path)
    before = repo_state(repo)
    result = cli(stub.url, *command, "--repo", str(repo))
    assert result.exit_code == ExitCode.INCOMPATIBLE and "9.0.0" in result.stderr
    assert repo_state(repo) == before and not (repo / ".git" / "llorch" / "runs").exists()


def test_bad_flags(cli: Cli, live_server: LiveServer, tmp_path: Path) -> None:
    base = live_server(scripted_config())
    repo = strkit_repo(tmp_path)
    for args in (("--agents", "many"), ("--agents", "0"), ("--budget-tokens", "0"), ("--budget-time", "-1")):
        result = cli(base, "loop", "run", "--repo", str(repo), *args)
        assert result.exit_code == ExitCode.USAGE, args
    unknown = cli(base, "loop", "run", "--repo", str(repo), "--resume", "run-nope")
    assert unknown.exit_code == ExitCode.USAGE and "no run 'run-nope'" in unknown.stderr
    pool = strkit_repo(tmp_path, "other", files={".llama-orch.toml": '[roles.coder]\npool = "gpu"\n'})
    refused = cli(base, "plan", "--repo", str(pool))
    assert refused.exit_code == ExitCode.USAGE and "roles.coder.pool" in refused.stderr
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""  # fmt: skip
