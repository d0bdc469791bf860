"""OIDC/JWT bearer tokens: signature against the issuer's JWKS, issuer, audience, expiry with leeway.

PyJWT does the cryptography and the registered-claim checks; what is ours is the key handling:

- the JWKS comes from a file or a URL through one async loader, is cached for ``cache_s``, and is
  fetched again early when a token names a key id the cache lacks (key rotation) — at most once
  every ``min_refresh_s``, so a stream of made-up key ids cannot turn into a stream of fetches;
- when a fetch fails, the keys already held keep working;
- a verified token is remembered (by its sha256, at most ``cache_tokens`` of them) until it
  expires or ``cache_token_s`` pass, whichever is first, so a client sending the same token on
  every request pays for one signature check, not one per request (a key withdrawn from the JWKS
  stops tokens signed with it within ``cache_token_s``);
- the token's ``alg`` must be one of the configured asymmetric algorithms (never ``none``, never
  HMAC — with a public key an HMAC "signature" is forgeable) and, when the key states its ``alg``,
  the same one.

Refusals (``401 UNAUTHENTICATED``, ``details.reason``): ``malformed``, ``alg_not_allowed``,
``unknown_kid``, ``bad_signature``, ``expired``, ``not_yet_valid``, ``wrong_audience``,
``wrong_issuer``, ``invalid_token`` (a required claim is missing), ``keys_unavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from llama_orch.auth._errors import Unauthenticated
from llama_orch.auth._identity import Identity, Scope, parse_scopes

log = logging.getLogger("llama_orch.auth")

ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
JwksLoader = Callable[[], Awaitable[bytes]]


def file_loader(path: Path) -> JwksLoader:
    async def load() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return load


def url_loader(url: str, *, timeout_s: float = 5.0) -> JwksLoader:
    """Fetch the JWKS from the identity provider (an operator-configured URL, trusted as such)."""

    async def load() -> bytes:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise OSError(f"JWKS URL answered HTTP {response.status}")
            return await response.content.read(1024 * 1024)

    return load


class JwksCache:
    """Keys by ``kid`` from ``load()``; refreshed when older than ``cache_s`` or on an unknown kid."""

    def __init__(
        self,
        load: JwksLoader,
        *,
        cache_s: float = 300.0,
        min_refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._cache_s = cache_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    async def key(self, kid: str | None) -> tuple[jwt.PyJWK, str | None] | None:
        """The key for ``kid`` and the ``alg`` its JWK declares (None when it declares none)."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self._cache_s
        missing = self._lookup(kid) is None
        may_refresh = self._fetched_at is None or now - self._fetched_at >= self._min_refresh_s
        if stale or (missing and may_refresh):
            await self._refresh(now)
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> tuple[jwt.PyJWK, str | None] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, now: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at > now:
                return  # another waiter refreshed while we queued
            self.fetches += 1
            try:
                document = json.loads(await self._load())
                entries = document["keys"]
                if not isinstance(entries, list):
                    raise ValueError("keys is not a list")
            except (OSError, ValueError, KeyError, TypeError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "could not refresh the JWKS (%s); keeping %d cached keys", type(exc).__name__, len(self._keys)
                )
                self._fetched_at = self._clock()
                return
            keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
            for entry in entries:
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
                    continue  # encryption keys, and symmetric keys (never published by an honest IdP)
                try:
                    key = jwt.PyJWK(entry)
                except jwt.PyJWTError:
                    continue  # a key type or curve we do not verify with; others may still serve
                declared = entry.get("alg")
                keys[key.key_id] = (key, declared if isinstance(declared, str) else None)
            self._keys = keys
            self._fetched_at = self._clock()


class JwtVerifier:
    """Verifies OIDC access/ID tokens and maps them to identities."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str | Sequence[str],
        algorithms: Sequence[str] = ("RS256", "ES256", "EdDSA"),
        leeway_s: float = 60.0,
        subject_claim: str = "sub",
        scope_claims: Sequence[str] = ("scope", "scp"),
        scope_prefix: str = "",
        default_scopes: frozenset[Scope] = frozenset(),
        cache_tokens: int = 10_000,
        cache_token_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bad = sorted(set(algorithms) - ASYMMETRIC)
        if bad:
            raise ValueError(f"JWT algorithms {bad} are not allowed (asymmetric signatures only)")
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._leeway = leeway_s
        self._subject_claim = subject_claim
        self._scope_claims = tuple(scope_claims)
        self._scope_prefix = scope_prefix
        self._default_scopes = default_scopes
        self._verified: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()
        self._cache_max = cache_tokens
        self._cache_s = cache_token_s
        self._clock = clock

    async def verify(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        now = self._clock()
        if known is not None:
            if now < known[1]:
                return known[0]
            del self._verified[digest]
        identity, expires = await self._verify(token)
        if self._cache_max:
            self._verified[digest] = (identity, min(expires, now + self._cache_s))
            while len(self._verified) > self._cache_max:
                self._verified.popitem(last=False)
        return identity

    async def _verify(self, token: str) -> tuple[Identity, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthenticated("malformed", "the bearer token is not a JWT", method="jwt") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise Unauthenticated("alg_not_allowed", f"JWT algorithm {str(alg)[:16]!r} is not accepted", method="jwt")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed", "the JWT key id is not a string", method="jwt")
        found = await self._jwks.key(kid)
        if found is None:
            if not self._jwks.has_keys:
                raise Unauthenticated(
                    "keys_unavailable", "the identity provider's keys are unavailable", method="jwt", retriable=True
                )
            raise Unauthenticated(
                "unknown_kid", "the JWT is signed with a key the issuer does not publish", method="jwt"
            )
        key, declared = found
        if declared is not None and declared != alg:
            raise Unauthenticated("alg_not_allowed", "the JWT algorithm does not match its key", method="jwt")
        claims = self._decode(token, key, alg)
        subject = claims.get(self._subject_claim)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("invalid_token", f"the JWT has no {self._subject_claim!r} claim", method="jwt")
        identity = Identity(subject[:256], "jwt", self._scopes(claims) | self._default_scopes)
        return identity, float(claims["exp"])

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("expired", "the JWT has expired", method="jwt") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("not_yet_valid", "the JWT is not valid yet", method="jwt") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("wrong_audience", "the JWT is not meant for this server", method="jwt") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("wrong_issuer", "the JWT comes from another issuer", method="jwt") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("bad_signature", "the JWT signature does not verify", method="jwt") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated("invalid_token", f"the JWT lacks the {exc.claim!r} claim", method="jwt") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated("alg_not_allowed", "the JWT algorithm does not match its key", method="jwt") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid_token", "the JWT does not verify", method="jwt") from None

    def _scopes(self, claims: dict[str, Any]) -> frozenset[Scope]:
        names: list[str] = []
        for claim in self._scope_claims:
            value = claims.get(claim)
            if isinstance(value, str):
                names.extend(value.split())
            elif isinstance(value, list):
                names.extend(v for v in value if isinstance(v, str))
        prefix = self._scope_prefix
        return parse_scopes(n[len(prefix) :] for n in names if n.startswith(prefix))
