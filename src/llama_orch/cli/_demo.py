"""``llama-orch loop demo``: the README's main command — the loop, end to end, on the embedded default.

With no options it starts orchestratord on the embedded default (no config: llama.cpp serving the
tiny embedded model on this machine, as a child process on a free loopback port), copies the example
spec'd project shipped in the repository (``examples/tinykit``) into a fresh git repository under a
temporary folder, runs ``loop run`` on it bounded by a time budget (600 s by default) with live
progress, prints the traceability matrix and says plainly how many work items got merged, then stops
the orchestratord it started (by its pid). The repository is kept, for ``llama-orch trace`` /
``status`` / ``replay`` afterwards.

Why a command rather than a shell script: the server must be stopped however the run ends (Ctrl-C
included), its readiness waited for with a bound, and the run shown with the same live view and
summary as ``loop run``. ``--config`` starts orchestratord on a pools file instead (a capable model);
``--connect`` uses the orchestratord at ``--base-url`` and starts nothing.

The demo exits 0 when the loop ran to its end (plan done, budget spent or progress stalled: with the
tiny models, work left is the expected outcome and is reported, not an error), and with the usual
codes otherwise (2 bad input, 6 unreachable, 7 incompatible, 130 Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

import llama_orch
from llama_orch.agents import LoopOptions, RunSummary
from llama_orch.cli._errors import CliError, ExitCode
from llama_orch.cli._loop import AgentsOpt, BudgetCost, BudgetTokens, _agents, _finish, _run_summary
from llama_orch.cli._serve import orchestratord_command
from llama_orch.cli._state import JsonFlag, state_of

EXAMPLES = Path(llama_orch.__file__).resolve().parents[2] / "examples"
"""The examples of a source checkout (the demo copies one; an installed wheel has none)."""
DEFAULT_EXAMPLE = "tinykit"
READY_TIMEOUT_S = 900.0
"""The first start assembles the embedded model; a llama.cpp replica loads in seconds after that."""
GIT_IDENTITY = ("-c", "user.name=llama-orch demo", "-c", "user.email=demo@llama-orch.invalid")


def _example(example: Path | None) -> Path:
    path = example if example is not None else EXAMPLES / DEFAULT_EXAMPLE
    if not path.is_dir():
        where = "" if example is not None else " (a source checkout of llama-orch has examples/)"
        raise CliError(f"no example project at {path}{where}", hint="pass --example PATH: a folder holding a spec")
    return path.resolve()


def _git(repo: Path, *args: str) -> None:
    done = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise CliError(f"git {args[0]} in {repo}: {done.stderr.strip()}", exit_code=ExitCode.FAILURE)


def make_repository(example: Path, under: Path) -> Path:
    """A fresh git repository holding a copy of ``example`` (one commit on ``main``)."""
    repo = under / example.name
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", ".venv")
    shutil.copytree(example, repo, ignore=ignore)
    _git(repo, "init", "--quiet", "--initial-branch", "main")
    # The loop commits as whoever the repository says; this one is the demo's.
    _git(repo, "config", "user.name", "llama-orch demo")
    _git(repo, "config", "user.email", "demo@llama-orch.invalid")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", f"{example.name}: the spec, copied from {example}")
    return repo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _capabilities(base_url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/v1/capabilities", timeout=5) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data
    except (OSError, urllib.error.URLError, ValueError):
        return None


class Backend:
    """orchestratord as a child process on a free loopback port, stopped by its pid."""

    def __init__(self, work: Path, config: Path | None) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "orchestratord.log"
        command = [*orchestratord_command(), "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(work / "orchestratord")]  # fmt: skip
        if config is not None:
            command += ["--config", str(config)]
        self._log = self.log_path.open("wb")
        try:
            # Its own process group: a Ctrl-C in the terminal reaches the CLI, which stops it in order.
            self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            self._log.close()
            raise CliError(f"cannot start orchestratord ({command[0]}): {exc}", exit_code=ExitCode.FAILURE) from exc

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CliError(f"orchestratord exited ({self.process.returncode}) before it was ready:\n{self.tail()}",
                               exit_code=ExitCode.FAILURE)  # fmt: skip
            caps = _capabilities(self.base_url)
            if caps is not None and caps.get("pools"):
                return caps
            time.sleep(0.5)
        raise CliError(f"orchestratord was not ready within {timeout_s:.0f} s:\n{self.tail()}",
                       exit_code=ExitCode.CONNECT)  # fmt: skip

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


def outcome(data: dict[str, Any]) -> str:
    """What got merged, per kind of work item, in one honest line."""
    states: dict[str, str] = data.get("item_states") or {}
    total: Counter[str] = Counter(item.split(":", 1)[0] for item in states)
    done: Counter[str] = Counter(item.split(":", 1)[0] for item, s in states.items() if s in ("merged", "done"))
    per_kind = ", ".join(f"{kind} {done[kind]}/{n}" for kind, n in sorted(total.items()))
    return f"{sum(done.values())} of {sum(total.values())} work items merged ({per_kind or 'none planned'})"


def demo(
    ctx: typer.Context,
    example: Annotated[
        Path | None,
        typer.Option("--example", help="The spec'd project to copy (default: the repository's examples/tinykit).",
                     show_default=False),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Start orchestratord on this pools file instead of the embedded default "
                     "(e.g. a capable model).", show_default=False),
    ] = None,
    connect: Annotated[
        bool, typer.Option("--connect", help="Use the orchestratord at --base-url; start none.")
    ] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to put the repository (default: a new temporary folder).",
                     show_default=False),
    ] = None,
    attempts: Annotated[
        int | None, typer.Option("--attempts", min=1, max=16, help="Best of K proposals per item (default: the "
                                 "example's setting).", show_default=False),
    ] = None,
    budget_tokens: BudgetTokens = None,
    budget_time: Annotated[
        float, typer.Option("--budget-time", min=1, help="Seconds the loop may take.")
    ] = 600.0,
    budget_cost: BudgetCost = None,
    agents: AgentsOpt = "auto",
    json_out: JsonFlag = False,
) -> None:  # fmt: skip
    """The loop end to end on the embedded default: start orchestratord, copy the example project to a new git
    repository, run a bounded loop with live progress, end with the traceability matrix (exit 0 when it ran)."""
    state = state_of(ctx)
    as_json = state.use_json(json_out)
    source = _example(example)
    if connect and config is not None:
        raise CliError("--connect uses a running orchestratord; --config starts one: give one of them")
    work = Path(tempfile.mkdtemp(prefix="llorch-demo-")) if work_dir is None else work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo = make_repository(source, work)
    say = state.err.print
    backend: Backend | None = None
    try:
        base_url = state.base_url
        if not connect:
            backend = Backend(work, config)
            what = f"the pools of {config}" if config else "the embedded default"
            with state.spinner(f"starting orchestratord on {what} (log: {backend.log_path})"):
                caps = backend.wait_ready()
            base_url = backend.base_url
        else:
            caps = _capabilities(base_url) or {}
        pools = ", ".join(f"{p.get('id')} ({p.get('engine')} {p.get('model_ref')}, {p.get('slots')} slots)"
                          for p in caps.get("pools", []))  # fmt: skip
        if not as_json:
            say(f"backend {base_url}: {pools or 'pools unknown'}", markup=False, highlight=False)
            say(f"repository {repo} (a copy of {source}); loop run for at most {budget_time:.0f} s",
                markup=False, highlight=False)  # fmt: skip
        options = LoopOptions(
            repo=repo, base_url=base_url, token=state.token, timeout=state.timeout, command="loop run",
            agents=_agents(agents),  # type: ignore[arg-type]
            budget_tokens=budget_tokens, budget_time_s=budget_time, budget_cost=budget_cost, attempts=attempts,
        )  # fmt: skip
        summary: RunSummary = _run_summary(state, options)
        data = summary.to_json()
        line = outcome(data)
        if as_json:
            sys.stdout.write(json.dumps({**data, "demo": {"repository": str(repo), "example": str(source),
                                         "backend": base_url, "pools": caps.get("pools", []), "outcome": line}},
                                        default=str) + "\n")  # fmt: skip
            sys.stdout.flush()
        else:
            _finish(state, summary, exit_incomplete=False)
            say(f"{source.name} on {pools or base_url}: {line}. The repository stays at {repo} "
                f"(branch {data.get('integration_branch')}); `llama-orch trace --repo {repo}` shows the matrix again.",
                markup=False, highlight=False)  # fmt: skip
    finally:
        if backend is not None:
            backend.stop()
