"""The catalog's configuration (``catalog:`` in orchestratord's YAML): trusted keys and the
default trust policy."""

from __future__ import annotations

from pydantic import Field, field_validator

from llama_orch._config import StrictModel
from llama_orch.catalog._catalog import DEFAULT_POLICY
from llama_orch.catalog._verify import load_public_key
from llama_orch_api import TrustMode, TrustPolicy


class TrustPolicyConfig(StrictModel):
    """The trust policy of catalog entries that do not set their own (fields they set win)."""

    mode: TrustMode = Field(
        default=DEFAULT_POLICY.mode,
        description="'strict': a missing signature or SBOM fails verification, and a never-verified model "
        "is refused; 'permissive': those only warn.",
    )
    allowed_sources: list[str] = Field(
        default=list(DEFAULT_POLICY.allowed_sources),  # pydantic copies it for each instance
        description="Source prefixes accepted (e.g. 'hf:google/', 'file:/models/'); other sources fail.",
    )
    require_signature: bool = Field(
        default=DEFAULT_POLICY.require_signature,
        description="Want an Ed25519 signature by a trusted key over the model's digest.",
    )
    require_sbom: bool = Field(default=DEFAULT_POLICY.require_sbom, description="Want an SBOM reference.")


class CatalogConfig(StrictModel):
    """The model catalog, kept in ``<data_dir>/catalog.sqlite3`` (in memory when data_dir is null)."""

    trusted_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Key id -> base64 of a raw 32-byte Ed25519 public key whose signatures are trusted.",
    )
    default_policy: TrustPolicyConfig = Field(default_factory=TrustPolicyConfig)

    @field_validator("trusted_keys")
    @classmethod
    def _ed25519_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for key_id, key in keys.items():
            try:
                load_public_key(key)
            except ValueError as exc:
                raise ValueError(f"trusted key {key_id!r}: {exc}") from None
        return keys

    def policy(self) -> TrustPolicy:
        return TrustPolicy.model_validate(self.default_policy.model_dump())


__all__ = ["CatalogConfig", "TrustPolicyConfig"]
