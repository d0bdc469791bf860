"""``llama-orch serve``: orchestratord in the foreground, as a child process (the CLI never imports it)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from llama_orch.cli._errors import CliError, ExitCode


def orchestratord_command() -> list[str]:
    """The installed ``orchestratord`` beside this Python, else on PATH, else ``python -m``."""
    beside = Path(sys.executable).parent / "orchestratord"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("orchestratord")
    if found:
        return [found]
    return [sys.executable, "-m", "llama_orch.server"]


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default 8080).", show_default=False)] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="LLORCH_CONFIG",
            help="YAML config; the embedded default when absent.",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where state is kept (default ./data).", show_default=False)
    ] = None,
) -> None:
    """Run orchestratord with the embedded default (or --config) in the foreground; Ctrl-C stops it.

    Other options after these are passed to orchestratord as they are.
    """
    command = orchestratord_command()
    for flag, value in (("--host", host), ("--port", port), ("--config", config), ("--data-dir", data_dir)):
        if value is not None:
            command += [flag, str(value)]
    command += list(ctx.args)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        raise CliError(f"cannot start orchestratord ({command[0]}): {exc}", exit_code=ExitCode.FAILURE) from exc

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        # From a terminal the child got the same Ctrl-C; otherwise tell it to stop, then insist.
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        raise typer.Exit(code if code > 0 else 128 - code)
