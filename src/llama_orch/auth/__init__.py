"""Authentication and authorization (OC-CLI-3001): identities and scopes, static bearer tokens
(stored hashed, compared in constant time), OIDC/JWT bearer tokens (JWKS from a file or URL,
cached, rotation, clock skew), mTLS client certificates, per-identity rate limits, audit records,
and the local dev mode (loopback only).

>>> Identity("ci", "token", frozenset({Scope.data})).allows(Scope.control)
False
"""

from __future__ import annotations

from llama_orch.auth._audit import AuditLog, AuditRecord
from llama_orch.auth._authenticator import Authenticator, check_bind, is_loopback_host
from llama_orch.auth._config import AuthConfig, LimitsConfig, MtlsConfig, OidcConfig, RateLimitsConfig, TokenConfig
from llama_orch.auth._errors import REASONS, Forbidden, RateLimited, Unauthenticated
from llama_orch.auth._identity import LOCAL_DEV, Identity, Scope, parse_scopes
from llama_orch.auth._jwt import ASYMMETRIC, JwksCache, JwtVerifier, file_loader, url_loader
from llama_orch.auth._mtls import CertificateIdentities, certificate_subject, client_ssl_context, server_ssl_context
from llama_orch.auth._ratelimit import Limits, RateLimiter, RateState
from llama_orch.auth._tokens import StaticTokens, hash_token, new_token

__all__ = [
    "ASYMMETRIC",
    "LOCAL_DEV",
    "REASONS",
    "AuditLog",
    "AuditRecord",
    "AuthConfig",
    "Authenticator",
    "CertificateIdentities",
    "Forbidden",
    "Identity",
    "JwksCache",
    "JwtVerifier",
    "Limits",
    "LimitsConfig",
    "MtlsConfig",
    "OidcConfig",
    "RateLimited",
    "RateLimiter",
    "RateLimitsConfig",
    "RateState",
    "Scope",
    "StaticTokens",
    "TokenConfig",
    "Unauthenticated",
    "certificate_subject",
    "check_bind",
    "client_ssl_context",
    "file_loader",
    "hash_token",
    "is_loopback_host",
    "new_token",
    "parse_scopes",
    "server_ssl_context",
    "url_loader",
]
