"""The ``auth:`` section of the orchestratord config.

.. code-block:: yaml

    auth:
      tokens:
        - {subject: ci, sha256: "sha256:9f86d0…", scopes: [data, artifacts]}
        - {subject: gpu-host-1, env: LLORCH_POOL_TOKEN, scopes: [replicas]}   # hashed at start
      oidc:
        issuer: https://idp.example/realms/lab
        audience: llama-orch
        jwks_url: https://idp.example/realms/lab/protocol/openid-connect/certs   # or jwks_file
      mtls:
        ca_file: /etc/llama-orch/clients-ca.pem
        cert_file: /etc/llama-orch/server.pem
        key_file: /etc/llama-orch/server.key
        subjects: {spiffe://lab/pool-managerd/gpu1: [replicas]}
      rate_limits:
        requests_per_minute: 600
        tokens_per_minute: 200000
        per_subject: {ci: {requests_per_minute: 6000}}

With none of ``tokens``, ``oidc`` and ``mtls`` set, auth is off: allowed only on a loopback bind
(the local dev mode, said at start-up).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llama_orch.auth._identity import Scope
from llama_orch.auth._jwt import ASYMMETRIC
from llama_orch.auth._ratelimit import Limits
from llama_orch.auth._tokens import hash_token


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenConfig(_Strict):
    subject: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/\-]+$")
    sha256: str | None = Field(None, description="'sha256:<hex>' of the token (orchestratord --hash-token).")
    env: str | None = Field(None, description="Or: an environment variable holding the token (hashed at start).")
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.data])

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.sha256 is None) == (self.env is None):
            raise ValueError("give exactly one of sha256 and env")
        if self.sha256 is not None:
            algo, _, digest = self.sha256.partition(":")
            if algo != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("sha256 must be 'sha256:' followed by 64 lower-case hex digits")
        return self

    def digest(self) -> str | None:
        """The stored hash; None when ``env`` names an unset variable (that token is then off)."""
        if self.sha256 is not None:
            return self.sha256
        value = os.environ.get(self.env or "")
        return hash_token(value) if value else None


class OidcConfig(_Strict):
    issuer: str
    audience: str | list[str]
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    leeway_s: float = Field(60, ge=0, le=600, description="Clock skew tolerated on exp/nbf/iat.")
    subject_claim: str = "sub"
    scope_claims: list[str] = Field(default_factory=lambda: ["scope", "scp"])
    scope_prefix: str = Field("", description="Only scopes with this prefix count, e.g. 'llorch:'.")
    default_scopes: list[Scope] = Field(default_factory=list)
    jwks_cache_s: float = Field(300, gt=0)
    jwks_min_refresh_s: float = Field(30, ge=0)
    verified_cache_s: float = Field(
        60, ge=0, le=3600, description="How long a verified token is remembered (never past its exp); 0: off."
    )

    @model_validator(mode="after")
    def _check(self) -> OidcConfig:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        bad = sorted(set(self.algorithms) - ASYMMETRIC)
        if bad:
            raise ValueError(f"algorithms {bad} are not allowed: asymmetric ones only (never none or HS*)")
        return self


class MtlsConfig(_Strict):
    ca_file: Path = Field(description="CA that signs client certificates.")
    cert_file: Path
    key_file: Path
    required: bool = Field(False, description="true: no valid client certificate, no connection.")
    subjects: dict[str, list[Scope]] = Field(default_factory=dict)
    default_scopes: list[Scope] = Field(default_factory=list)


class LimitsConfig(_Strict):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)

    def limits(self) -> Limits:
        return Limits(self.requests_per_minute, self.tokens_per_minute)


class RateLimitsConfig(LimitsConfig):
    per_subject: dict[str, LimitsConfig] = Field(default_factory=dict)


class AuthConfig(_Strict):
    tokens: list[TokenConfig] = Field(default_factory=list)
    oidc: OidcConfig | None = None
    mtls: MtlsConfig | None = None
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens) or self.oidc is not None or self.mtls is not None
