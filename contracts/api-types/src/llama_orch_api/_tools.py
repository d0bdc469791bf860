"""Tool wire models: the safe fetch tool (``POST /v1/tools/fetch``, OC-CLI-2501)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FetchRequest(BaseModel):
    """Fetch one URL through orchestratord's outbound policy (GET or HEAD, size- and time-limited)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=8192)
    method: Literal["GET", "HEAD"] = "GET"
    max_bytes: int | None = Field(default=None, ge=1, le=64 * 1024 * 1024, description="At most the server's limit.")


class FetchHop(BaseModel):
    """One request of the fetch: the URL (redacted), its status, the address it was pinned to and the
    policy rule that allowed it."""

    model_config = ConfigDict(extra="ignore")

    url: str
    status: int
    address: str
    rule: str


class FetchResponse(BaseModel):
    """What came back. ``text`` is the body when it is textual UTF-8 (secrets redacted), else
    ``body_base64``; ``artifact_id`` is the ``trace`` artifact recording the fetch."""

    model_config = ConfigDict(extra="ignore")

    url: str
    final_url: str
    method: Literal["GET", "HEAD"]
    status: int
    content_type: str
    headers: dict[str, str]
    bytes: int = Field(ge=0)
    sha256: str
    text: str | None = None
    body_base64: str | None = None
    cache: Literal["miss", "hit", "revalidated"]
    hops: list[FetchHop]
    elapsed_ms: int = Field(ge=0)
    artifact_id: str
