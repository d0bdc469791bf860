"""One place that turns a request's credentials into an :class:`Identity`, and checks its scope.

Order: a bearer token when one is sent (a JWT when it looks like one and OIDC is configured,
otherwise a static token), else the verified client certificate (mTLS), else ``401``. With no
method configured every caller is :data:`LOCAL_DEV` — allowed only on a loopback bind
(:func:`check_bind`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from llama_orch.auth._config import AuthConfig
from llama_orch.auth._errors import Forbidden, Unauthenticated
from llama_orch.auth._identity import LOCAL_DEV, Identity, Scope
from llama_orch.auth._jwt import JwksCache, JwksLoader, JwtVerifier, file_loader, url_loader
from llama_orch.auth._mtls import CertificateIdentities
from llama_orch.auth._ratelimit import RateLimiter
from llama_orch.auth._tokens import StaticTokens
from llama_orch.errors import ConfigError

log = logging.getLogger("llama_orch.auth")


def is_loopback_host(host: str) -> bool:
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, config: AuthConfig) -> str:
    """Refuse (``ConfigError``) a non-loopback bind without auth; return the start-up line to log."""
    if config.enabled:
        methods = [m for m, on in (("tokens", config.tokens), ("oidc", config.oidc), ("mtls", config.mtls)) if on]
        return f"authentication on ({', '.join(methods)})"
    if not is_loopback_host(host):
        raise ConfigError(
            f"refusing to serve on {host} without authentication: configure auth.tokens, auth.oidc or auth.mtls, "
            "or bind to 127.0.0.1 for the local dev mode"
        )
    return f"local dev mode: no authentication, every caller has every scope (bound to loopback {host})"


class Authenticator:
    def __init__(self, config: AuthConfig, *, jwks_loader: JwksLoader | None = None) -> None:
        self.config = config
        entries = []
        for token in config.tokens:
            digest = token.digest()
            if digest is None:
                log.warning("auth token for %s is off: %s is not set", token.subject, token.env)
                continue
            entries.append((token.subject, digest, token.scopes))
        self.tokens = StaticTokens(entries)
        self.jwt: JwtVerifier | None = None
        if config.oidc is not None:
            oidc = config.oidc
            loader = jwks_loader
            if loader is None and oidc.jwks_url is not None:
                loader = url_loader(oidc.jwks_url)
            elif loader is None:
                assert oidc.jwks_file is not None  # the config allows exactly one of the two
                loader = file_loader(oidc.jwks_file)
            self.jwt = JwtVerifier(
                JwksCache(loader, cache_s=oidc.jwks_cache_s, min_refresh_s=oidc.jwks_min_refresh_s),
                issuer=oidc.issuer,
                audience=oidc.audience,
                algorithms=oidc.algorithms,
                leeway_s=oidc.leeway_s,
                subject_claim=oidc.subject_claim,
                scope_claims=oidc.scope_claims,
                scope_prefix=oidc.scope_prefix,
                default_scopes=frozenset(oidc.default_scopes),
                cache_tokens=10_000 if oidc.verified_cache_s > 0 else 0,
                cache_token_s=oidc.verified_cache_s,
            )
        self.certificates: CertificateIdentities | None = None
        if config.mtls is not None:
            self.certificates = CertificateIdentities(
                {k: frozenset(v) for k, v in config.mtls.subjects.items()}, frozenset(config.mtls.default_scopes)
            )
        limits = config.rate_limits
        self.rate_limiter = RateLimiter(limits.limits(), {k: v.limits() for k, v in limits.per_subject.items()})

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    async def authenticate(self, authorization: str | None, peercert: Mapping[str, Any] | None = None) -> Identity:
        """The caller's identity from its ``Authorization`` header and verified client certificate."""
        if not self.enabled:
            return LOCAL_DEV
        if authorization:
            scheme, _, credential = authorization.strip().partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                raise Unauthenticated("malformed", "use 'Authorization: Bearer <token>'")
            if self.jwt is not None and credential.count(".") == 2:
                return await self.jwt.verify(credential)
            identity = self.tokens.verify(credential)
            if identity is None:
                raise Unauthenticated("invalid_token", "the bearer token is not valid", method="token")
            return identity
        if self.certificates is not None and peercert:
            return self.certificates.identity(peercert)
        raise Unauthenticated("missing", "authentication required: send 'Authorization: Bearer <token>'")

    @staticmethod
    def authorize(identity: Identity, scope: Scope) -> None:
        if not identity.allows(scope):
            raise Forbidden(identity.label, scope)
