"""Artifact wire models: the content-addressed store for agent outputs (OC-CLI-2301).

An artifact's id is its content address, computable by anyone from the request alone::

    id = "sha256:" + hex(sha256(JCS({"kind": kind, "content": content, "parent": parent})))

where JCS is RFC 8785 canonical JSON, ``content`` is the JSON value as sent, and ``parent`` is the
parent's id or ``null``. Tags, session, task and media type are metadata: they are not part of the
id, so the same output stored twice is one artifact (its tag sets are merged).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    WithJsonSchema,
)

ARTIFACT_ID_PATTERN = r"^sha256:[0-9a-f]{64}$"

ArtifactId = Annotated[str, Field(pattern=ARTIFACT_ID_PATTERN, description="Content address, `sha256:<hex>`.")]
Tag = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@=+\-]+$")]
_Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
_JSON_VALUE: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)


def _identity(value: JsonValue) -> JsonValue:
    return value


# Any JSON value, validated as pydantic's JsonValue. The validator and serializer are given
# explicitly so that the JSON Schema is an inline ``{}``: with the bare alias pydantic also emits a
# ``JsonValue`` definition that every OpenAPI document would have to carry.
Content = Annotated[
    JsonValue,
    PlainValidator(_JSON_VALUE.validate_python),
    PlainSerializer(_identity, return_type=Any),
    WithJsonSchema({}),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ArtifactKind(StrEnum):
    """What an artifact is. ``other`` is for anything the loop stores that is none of the rest."""

    plan = "plan"
    summary = "summary"
    diff = "diff"
    trace = "trace"
    test_result = "test-result"
    other = "other"


class ArtifactCreate(_Request):
    """``POST /v1/artifacts`` body."""

    kind: ArtifactKind
    content: Content = Field(
        description="Any JSON value: a string for text (a diff, a plan in Markdown), an object for "
        "structured records. Part of the id."
    )
    parent: ArtifactId | None = Field(
        default=None, description="The artifact this one was derived from (must exist). Part of the id."
    )
    tags: list[Tag] = Field(
        default_factory=list, max_length=64, description="Merged into the stored set; not part of the id."
    )
    session_id: _Identifier | None = None
    task_id: _Identifier | None = None
    media_type: str | None = Field(
        default=None,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*(;.*)?$",
        description="What the content is (`text/x-diff`, `text/markdown`...); default `text/plain` "
        "for string content, `application/json` otherwise.",
    )


class ArtifactRef(_Response):
    """An artifact's metadata, without its content."""

    id: ArtifactId
    kind: ArtifactKind
    parent: str | None = None
    tags: list[str] = Field(description="Sorted; the union of every post of this content.")
    session_id: str | None = None
    task_id: str | None = None
    media_type: str
    size_bytes: int = Field(
        ge=0, description="Bytes stored: UTF-8 of string content, else its RFC 8785 canonical JSON."
    )
    created_at: datetime


class Artifact(ArtifactRef):
    """``GET /v1/artifacts/{id}``: metadata and content."""

    content: Content = Field(description="As posted (JSON values in canonical form: key order, number spelling).")


class ArtifactList(_Response):
    """``GET /v1/artifacts``: a page, newest first."""

    artifacts: list[ArtifactRef]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class ArtifactLineage(_Response):
    """``GET /v1/artifacts/{id}/lineage``: the chain of parents back to the root."""

    id: str
    root: str = Field(description="The oldest ancestor (the artifact itself when it has no parent).")
    ancestors: list[ArtifactRef] = Field(description="Parent first, root last; empty for a root artifact.")
