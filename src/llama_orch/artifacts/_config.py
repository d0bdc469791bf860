"""The artifact store's configuration (``artifacts:`` in orchestratord's YAML)."""

from __future__ import annotations

from pydantic import Field

from llama_orch._config import StrictModel


class ArtifactsConfig(StrictModel):
    max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest POST /v1/artifacts body (may exceed server.max_body_bytes, which other routes keep).",
    )
    inline_max_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Contents up to this size live in the SQLite index; larger ones in the blob folder.",
    )


__all__ = ["ArtifactsConfig"]
