"""``llama-orch catalog add|show|verify|retire|activate|rm``: the model catalog (OC-CLI-2101)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llama_orch.cli._errors import CliError, ExitCode
from llama_orch.cli._state import JsonFlag, State, state_of
from llama_orch_api import (
    CatalogFileSpec,
    CatalogModel,
    CatalogModelCreate,
    ModelState,
    VerificationStatus,
    VerifyResult,
)

app = typer.Typer(help="Register, inspect, verify and retire models.", no_args_is_help=True)

ModelId = Annotated[str, typer.Argument(help="The catalog entry's id.", show_default=False)]


def _file_spec(path: Path) -> CatalogFileSpec:
    path = path.expanduser().resolve()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return CatalogFileSpec(path=str(path), sha256=digest.hexdigest(), size_bytes=path.stat().st_size)


def _entry_table(entry: CatalogModel) -> Table:
    table = Table(show_header=False, box=None)
    table.add_row("id", entry.id)
    table.add_row("model", entry.model_ref)
    table.add_row("state", entry.state.value + (f" ({entry.state_reason})" if entry.state_reason else ""))
    table.add_row("source", entry.source)
    table.add_row("digest", entry.digest)
    table.add_row("verification", entry.verification.status.value)
    table.add_row("trust policy", f"{entry.trust_policy.mode.value}, signature required: "
                  f"{entry.trust_policy.require_signature}")  # fmt: skip
    for f in entry.files:
        table.add_row("file", f"{f.path} ({f.size_bytes} bytes)")
    if entry.tags:
        table.add_row("tags", ", ".join(entry.tags))
    return table


def _show_entry(state: State, entry: CatalogModel) -> None:
    if state.json:
        state.emit(entry)
    else:
        state.out.print(_entry_table(entry))


@app.command("add")
def add(
    ctx: typer.Context,
    model_id: Annotated[str | None, typer.Argument(help="The entry's id.", show_default=False)] = None,
    model_ref: Annotated[
        str | None, typer.Option("--model-ref", help="What pools and tasks call the model.", show_default=False)
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Where it came from: file:/…, https://…, hf:org/repo/file.", show_default=False)
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file", help="A model file on this machine (hashed here); repeat for several.", show_default=False
        ),
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag; repeat for several.", show_default=False)
    ] = None,
    from_json: Annotated[
        Path | None,
        typer.Option("--from-json", help="The whole CatalogModelCreate as JSON ('-': stdin).", show_default=False),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Register a model: ID --model-ref REF --source SRC --file PATH…, or --from-json FILE."""
    state = state_of(ctx)
    state.use_json(json_out)
    if from_json is not None:
        if any(v for v in (model_id, model_ref, source, files, tags)):
            raise CliError("--from-json takes the whole entry: give no ID, --model-ref, --source, --file or --tag")
        raw = sys.stdin.read() if str(from_json) == "-" else from_json.read_text(encoding="utf-8")
        spec = CatalogModelCreate.model_validate_json(raw)
    else:
        missing = [name for name, v in (("ID", model_id), ("--model-ref", model_ref), ("--source", source),
                                        ("--file", files)) if not v]  # fmt: skip
        if missing:
            raise CliError(
                f"missing {', '.join(missing)} (or use --from-json)", hint="see `llama-orch catalog add --help`"
            )
        spec = CatalogModelCreate(
            id=model_id, model_ref=model_ref, source=source, files=[_file_spec(p) for p in files or []], tags=tags or []
        )
    _show_entry(state, state.client().create_model(spec))


@app.command("show")
def show(
    ctx: typer.Context,
    model_id: Annotated[
        str | None, typer.Argument(help="An entry's id; all entries when absent.", show_default=False)
    ] = None,
    state_filter: Annotated[
        ModelState | None, typer.Option("--state", help="Only entries in this state (listing).", show_default=False)
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """One entry, or the list of entries."""
    state = state_of(ctx)
    state.use_json(json_out)
    client = state.client()
    if model_id is not None:
        _show_entry(state, client.get_model(model_id))
        return
    listing = client.list_models(state=state_filter)
    if state.json:
        state.emit(listing)
        return
    table = Table(title="catalog", title_justify="left")
    for column in ("id", "model", "state", "verification", "files", "source"):
        table.add_column(column)
    for entry in listing.models:
        table.add_row(entry.id, entry.model_ref, entry.state.value, entry.verification.status.value,
                      str(len(entry.files)), entry.source)  # fmt: skip
    state.out.print(table)


@app.command("verify")
def verify(ctx: typer.Context, model_id: ModelId, json_out: JsonFlag = False) -> None:
    """Hash the model's files and check its signatures against the trust policy.

    Exits 8 when the verification failed (after printing the result).
    """
    state = state_of(ctx)
    state.use_json(json_out)
    result: VerifyResult = state.client().verify_model(model_id)
    if state.json:
        state.emit(result)
    else:
        state.out.print(f"{model_id}: {result.status.value}", markup=False)
        for warning in result.warnings:
            state.out.print(f"  warning: {warning}", markup=False)
        for error in result.errors:
            state.out.print(f"  error: {error}", markup=False)
    if result.status is VerificationStatus.failed:
        raise CliError(
            f"model {model_id!r} failed verification: {'; '.join(result.errors) or 'see above'}",
            exit_code=ExitCode.REFUSED,
            hint="fix the files or the entry's digests/signatures, then verify again",
        )


@app.command("retire")
def retire(
    ctx: typer.Context,
    model_id: ModelId,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the entry).", show_default=False)] = None,
    drain_deadline_ms: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="End tasks still running on it this many ms from now (default: let them finish).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Retire a model: new tasks for it are refused (MODEL_DEPRECATED)."""
    state = state_of(ctx)
    state.use_json(json_out)
    entry = state.client().set_model_state(
        model_id, ModelState.Retired, reason=reason, drain_deadline_ms=drain_deadline_ms
    )
    _show_entry(state, entry)


@app.command("activate")
def activate(
    ctx: typer.Context,
    model_id: ModelId,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the entry).", show_default=False)] = None,
    json_out: JsonFlag = False,
) -> None:
    """Make a retired model admissible again."""
    state = state_of(ctx)
    state.use_json(json_out)
    _show_entry(state, state.client().set_model_state(model_id, ModelState.Active, reason=reason))


@app.command("rm")
def remove(ctx: typer.Context, model_id: ModelId, json_out: JsonFlag = False) -> None:
    """Remove an entry from the catalog."""
    state = state_of(ctx)
    state.client().delete_model(model_id)
    if state.use_json(json_out):
        sys.stdout.write(json.dumps({"id": model_id, "deleted": True}) + "\n")
    else:
        state.out.print(f"removed {model_id}", markup=False)
