"""``llama-orch artifacts put|get|ls|lineage``: the content-addressed store (OC-CLI-2301)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from llama_orch.cli._errors import CliError
from llama_orch.cli._state import JsonFlag, state_of
from llama_orch.client import last_response
from llama_orch_api import ArtifactCreate, ArtifactKind, ArtifactRef

app = typer.Typer(help="Store and read artifacts: plans, diffs, traces, test results.", no_args_is_help=True)

ArtifactId = Annotated[str, typer.Argument(help="sha256:<hex> (or the bare hex).", show_default=False)]


def _refs_table(title: str, refs: list[ArtifactRef]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "kind", "size", "media type", "tags", "created"):
        table.add_column(column)
    for ref in refs:
        table.add_row(ref.id, ref.kind.value, str(ref.size_bytes), ref.media_type, ", ".join(ref.tags),
                      ref.created_at.isoformat(timespec="seconds"))  # fmt: skip
    return table


@app.command("put")
def put(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="File with the content ('-': stdin).")] = Path("-"),
    kind: Annotated[ArtifactKind, typer.Option(help="What it is.")] = ArtifactKind.other,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag; repeat for several.", show_default=False)
    ] = None,
    parent: Annotated[str | None, typer.Option(help="The artifact it derives from.", show_default=False)] = None,
    session: Annotated[str | None, typer.Option(help="Session id.", show_default=False)] = None,
    task: Annotated[str | None, typer.Option(help="Task id.", show_default=False)] = None,
    media_type: Annotated[str | None, typer.Option(help="e.g. text/x-diff.", show_default=False)] = None,
    json_content: Annotated[
        bool, typer.Option("--json-content", help="The content is JSON: store the value, not the text.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Store an artifact; its id is the sha256 of its kind, content and parent."""
    state = state_of(ctx)
    text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    content: Any = text
    if json_content:
        try:
            content = json.loads(text)
        except ValueError as exc:
            raise CliError(f"--json-content: the content is not JSON ({exc})") from None
    spec = ArtifactCreate(
        kind=kind, content=content, tags=tags or [], parent=parent, session_id=session, task_id=task,
        media_type=media_type,
    )  # fmt: skip
    ref = state.client().put_artifact(spec)
    if state.use_json(json_out):
        state.emit(ref)
        return
    info = last_response()
    verb = "already stored (tags merged)" if info is not None and info.status == 200 else "stored"
    state.out.print(f"{verb} {ref.id} ({ref.kind.value}, {ref.size_bytes} bytes)", markup=False)


@app.command("get")
def get(
    ctx: typer.Context,
    artifact_id: ArtifactId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the content here.", show_default=False)
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Print an artifact's content (text as is, JSON pretty); --json prints the whole Artifact."""
    state = state_of(ctx)
    artifact = state.client().get_artifact(artifact_id)
    if state.use_json(json_out) and output is None:
        state.emit(artifact)
        return
    content = artifact.content
    text = content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        if state.json:
            state.emit(artifact.model_copy(update={"content": None}))
        else:
            state.note(f"wrote {artifact.size_bytes} bytes to {output}")
        return
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command("ls")
def ls(
    ctx: typer.Context,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="Having all these tags.", show_default=False)] = None,
    kind: Annotated[ArtifactKind | None, typer.Option(help="Of this kind.", show_default=False)] = None,
    session: Annotated[str | None, typer.Option(help="Of this session.", show_default=False)] = None,
    task: Annotated[str | None, typer.Option(help="Of this task.", show_default=False)] = None,
    parent: Annotated[str | None, typer.Option(help="Children of this artifact.", show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.", show_default=False)] = None,
    json_out: JsonFlag = False,
) -> None:
    """List artifacts, newest first (one page; the next page's cursor is shown)."""
    state = state_of(ctx)
    page = state.client().list_artifacts(
        tags=tags or [], kind=kind, session_id=session, task_id=task, parent=parent, limit=limit, cursor=cursor
    )
    if state.use_json(json_out):
        state.emit(page)
        return
    state.out.print(_refs_table("artifacts", page.artifacts))
    if page.next_cursor is not None:
        state.note(f"more: --cursor {page.next_cursor}")


@app.command("lineage")
def lineage(ctx: typer.Context, artifact_id: ArtifactId, json_out: JsonFlag = False) -> None:
    """An artifact's parents, back to its root."""
    state = state_of(ctx)
    result = state.client().artifact_lineage(artifact_id)
    if state.use_json(json_out):
        state.emit(result)
        return
    state.out.print(f"{result.id} ← " + " ← ".join(a.id for a in result.ancestors) if result.ancestors
                    else f"{result.id} (a root)", markup=False)  # fmt: skip
    if result.ancestors:
        state.out.print(_refs_table("ancestors (parent first)", result.ancestors))
