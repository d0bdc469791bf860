"""The ``llama-orch`` application: global options, and the group that turns failures into exits."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from llama_orch.cli._errors import ExitCode, report
from llama_orch.cli._state import State
from llama_orch.client import DEFAULT_BASE_URL, SUPPORTED_API_VERSIONS


class _Group(TyperGroup):
    """Runs every command inside the one handler that maps failures to exit codes."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors and explicit exits: typer shows them (usage: exit 2)
        except KeyboardInterrupt:
            state = ctx.find_object(State)
            if state is not None and not state.json:
                state.err.print("interrupted", style="yellow")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:
            state = ctx.find_object(State)
            if state is None:
                from rich.console import Console

                code = report(exc, Console(stderr=True), as_json=False)
            else:
                code = report(exc, state.err, as_json=state.json)
            raise typer.Exit(code) from None


app = typer.Typer(
    name="llama-orch",
    cls=_Group,
    help="Drive orchestratord from the command line: run it, submit tasks, watch pools, manage models and artifacts, "
    "and run the auto-programmer (plan, contract sync, tests plan, impl apply, loop run, trace, replay).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        try:
            mine = version("llama-orch")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            mine = "unknown"
        typer.echo(f"llama-orch {mine} (server API {SUPPORTED_API_VERSIONS})")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    base_url: Annotated[
        str, typer.Option("--base-url", envvar="LLORCH_BASE_URL", help="Where orchestratord listens.")
    ] = DEFAULT_BASE_URL,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="LLORCH_TOKEN", help="Sent as 'Authorization: Bearer'.", show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine output on every command.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer (drain/reload wait longer).")
    ] = 30.0,
    correlation_id: Annotated[
        str | None,
        typer.Option(
            "--correlation-id",
            envvar="LLORCH_CORRELATION_ID",
            help="X-Correlation-Id for every request (generated per request when absent).",
            show_default=False,
        ),
    ] = None,
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Global options; each also has an environment variable where shown."""
    state = State(base_url=base_url, token=token, json=json_out, timeout=timeout, correlation_id=correlation_id)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _register() -> None:
    from llama_orch.cli import (
        _artifacts,
        _catalog,
        _contract,
        _demo,
        _loop,
        _pools,
        _serve,
        _sessions,
        _status,
        _submit,
    )

    app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_serve.serve)
    app.command("status")(_status.status)
    app.command("capabilities")(_status.capabilities)
    app.command("submit")(_submit.submit)
    app.add_typer(_sessions.app, name="sessions")
    app.add_typer(_catalog.app, name="catalog")
    app.add_typer(_pools.app, name="pools")
    app.add_typer(_artifacts.app, name="artifacts")
    app.command("plan")(_loop.plan)
    _loop.contract_app.command("verify")(_contract.verify)
    app.add_typer(_loop.contract_app, name="contract")
    app.add_typer(_loop.tests_app, name="tests")
    app.add_typer(_loop.impl_app, name="impl")
    _loop.loop_app.command("demo")(_demo.demo)
    app.add_typer(_loop.loop_app, name="loop")
    app.command("trace")(_loop.trace)
    app.command("replay")(_loop.replay_cmd)


_register()
