"""Catalog wire models: model entries, their trust policy and verification (OC-CLI-2101).

A catalog entry names a model (``model_ref``, what pools and tasks ask for), where it came from
(``source``), the files cached on the orchestrator's disk with their expected SHA-256 digests,
optional Ed25519 signatures over the overall digest, and the trust policy it is checked against.

Requests forbid unknown fields; responses ignore them (see ``_models``). That is why the nested
parts come in twins: ``CatalogFileSpec`` in a request, ``CatalogFile`` in an answer, and so on.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from llama_orch_api._numbers import Int


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ModelState(StrEnum):
    """``Active``: admitted. ``Retired``: new tasks are refused (``MODEL_DEPRECATED``)."""

    Active = "Active"
    Retired = "Retired"


class TrustMode(StrEnum):
    """``strict``: every shortfall fails. ``permissive``: a missing signature or SBOM only warns."""

    strict = "strict"
    permissive = "permissive"


class VerificationStatus(StrEnum):
    unverified = "unverified"
    verified = "verified"
    failed = "failed"


CatalogId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]
Source = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=r"^(file:/|https://[^/\s]+/|hf:[^/\s]+/[^/\s]+/[^/\s])",
        description="Where the model came from: `file:/path`, `https://host/...` or `hf:org/repo/file`.",
    ),
]
KeyId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@\-]+$")]
Base64 = Annotated[str, Field(min_length=4, max_length=1024, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]
Tag = Annotated[str, Field(min_length=1, max_length=128)]


# ---------------------------------------------------------------------------------------------
# Requests


class CatalogFileSpec(_Request):
    """One file of the model as cached on the orchestrator's disk, with what it must hash to."""

    # Absolute (a relative path would depend on orchestratord's working directory, which nobody
    # controls): said by the pattern, so that the schema states the rule the server enforces.
    path: str = Field(
        min_length=1, max_length=4096, pattern=r"^/", description="Absolute local path of the cached file."
    )
    sha256: Sha256Hex
    size_bytes: Int = Field(ge=0)


class ModelSignatureSpec(_Request):
    """An Ed25519 signature (base64) over the UTF-8 bytes of the entry's ``digest`` string."""

    key_id: KeyId = Field(description="Names a key in the server's `catalog.trusted_keys`.")
    signature: Base64


class TrustPolicySpec(_Request):
    """Overrides of the server's default trust policy; a field left out keeps the default."""

    mode: TrustMode | None = None
    allowed_sources: list[Annotated[str, Field(min_length=1, max_length=2048)]] | None = Field(
        default=None, max_length=64, description="Source prefixes accepted; an empty list accepts none."
    )
    # Strict: JSON true/false only, as the schema says (pydantic would take 0/1 otherwise).
    require_signature: StrictBool | None = None
    require_sbom: StrictBool | None = None


class CatalogModelCreate(_Request):
    """``POST /v1/catalog/models`` body. The entry starts ``Active`` and ``unverified``."""

    id: CatalogId
    model_ref: str = Field(
        min_length=1, max_length=512, description="What pools and tasks name; unique in the catalog."
    )
    source: Source
    files: list[CatalogFileSpec] = Field(min_length=1, max_length=256)
    tags: list[Tag] = Field(default_factory=list, max_length=64)
    manifests: dict[str, object] = Field(default_factory=dict, description="Free-form JSON kept with the entry.")
    signatures: list[ModelSignatureSpec] = Field(default_factory=list, max_length=16)
    sbom: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Where the SBOM is; a `file:/path` reference must exist when verified.",
    )
    trust_policy: TrustPolicySpec | None = None

    @field_validator("files")
    @classmethod
    def _distinct_paths(cls, files: list[CatalogFileSpec]) -> list[CatalogFileSpec]:
        # JSON Schema cannot say "unique by one field"; the operation documents this refusal.
        paths = [f.path for f in files]
        if len(set(paths)) != len(paths):
            raise ValueError("each path may appear once")
        return files


class ModelStateRequest(_Request):
    """``POST /v1/catalog/models/{id}/state`` body."""

    # The validator's rule, stated in JSON Schema: a drain deadline only when retiring.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"required": ["state"], "properties": {"state": {"const": "Active"}}},
            "then": {"properties": {"drain_deadline_ms": {"type": "null"}}},
        },
    )

    state: ModelState
    drain_deadline_ms: Int | None = Field(
        default=None,
        ge=0,
        le=604_800_000,
        description="Retired only: tasks still running on the model are ended this many ms from now; "
        "left out, they may finish.",
    )
    reason: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _deadline_only_when_retiring(self) -> ModelStateRequest:
        if self.drain_deadline_ms is not None and self.state is not ModelState.Retired:
            raise ValueError("drain_deadline_ms applies to state 'Retired' only")
        return self


# ---------------------------------------------------------------------------------------------
# Responses


class CatalogFile(_Response):
    path: str
    sha256: str
    size_bytes: int = Field(ge=0)


class ModelSignature(_Response):
    key_id: str
    signature: str


class TrustPolicy(_Response):
    """The policy an entry is verified against (the server's default with the entry's overrides)."""

    mode: TrustMode
    allowed_sources: list[str]
    require_signature: bool
    require_sbom: bool


class VerifyResult(_Response):
    """Outcome of the last verification; ``checked_at`` is null while ``unverified``."""

    status: VerificationStatus
    checked_at: datetime | None
    warnings: list[str]
    errors: list[str]


class CatalogModel(_Response):
    """A catalog entry."""

    id: str
    model_ref: str
    source: str
    files: list[CatalogFile]
    digest: str = Field(
        description="`sha256:<hex>`: the file's digest for one file; for several, the SHA-256 of "
        "their hex digests, one per line, in order."
    )
    tags: list[str]
    manifests: dict[str, object]
    signatures: list[ModelSignature]
    sbom: str | None
    trust_policy: TrustPolicy
    state: ModelState
    state_reason: str | None
    retired_at: datetime | None
    drain_deadline_at: datetime | None = Field(
        description="When tasks still running on a retired model are ended; null: they may finish."
    )
    verification: VerifyResult
    created_at: datetime
    updated_at: datetime


class CatalogModelList(_Response):
    models: list[CatalogModel]


__all__ = [
    "CatalogFile",
    "CatalogFileSpec",
    "CatalogModel",
    "CatalogModelCreate",
    "CatalogModelList",
    "ModelSignature",
    "ModelSignatureSpec",
    "ModelState",
    "ModelStateRequest",
    "TrustMode",
    "TrustPolicy",
    "TrustPolicySpec",
    "VerificationStatus",
    "VerifyResult",
]
