"""OIDC/JWT bearer tokens: accepted, and refused for each way a token can be wrong."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from llama_orch.auth import (
    AuthConfig,
    Authenticator,
    JwksCache,
    JwtVerifier,
    Scope,
    Unauthenticated,
    file_loader,
    url_loader,
)

ISSUER = "https://idp.test/realms/lab"
AUDIENCE = "llama-orch"
RSA1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC1 = ec.generate_private_key(ec.SECP256R1())
ED1 = ed25519.Ed25519PrivateKey.generate()


def _jwk(key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    data["kid"] = kid
    if alg:
        data["alg"] = alg
    return data


def _jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def _token(key: Any = RSA1, kid: str | None = "k1", alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, "scope": "data artifacts"}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"kid": kid} if kid else {}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


class _Loader:
    def __init__(self, *documents: bytes) -> None:
        self.documents = list(documents)
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        document = self.documents[min(self.calls, len(self.documents)) - 1]
        if document == b"fail":
            raise OSError("idp down")
        return document


def _verifier(loader: Any, **kw: Any) -> JwtVerifier:
    clock = kw.pop("clock", time.monotonic)
    cache = JwksCache(loader, cache_s=kw.pop("cache_s", 300), min_refresh_s=kw.pop("min_refresh_s", 30), clock=clock)
    return JwtVerifier(cache, issuer=ISSUER, audience=AUDIENCE, algorithms=("RS256", "ES256", "EdDSA", "PS256"), **kw)


async def test_valid_tokens_of_each_key_type() -> None:
    loader = _Loader(_jwks(_jwk(RSA1, "k1"), _jwk(EC1, "e1"), _jwk(ED1, "d1")))
    verifier = _verifier(loader)
    identity = await verifier.verify(_token())
    assert (identity.subject, identity.method, identity.scopes) == ("alice", "jwt", {Scope.data, Scope.artifacts})
    assert (await verifier.verify(_token(EC1, "e1", "ES256", sub="bob"))).subject == "bob"
    assert (await verifier.verify(_token(ED1, "d1", "EdDSA"))).subject == "alice"
    assert (await verifier.verify(_token(RSA1, "k1", "PS256"))).subject == "alice"
    assert loader.calls == 1  # cached


async def _refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401 and token not in caught.value.message
    return caught.value.reason


def _alg_none(**claims: Any) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, "scope": "admin", **claims}
    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{b64(payload)}."


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _token(exp=int(time.time()) - 3600), "expired"),
        (lambda: _token(nbf=int(time.time()) + 3600), "not_yet_valid"),
        (lambda: _token(aud="someone-else"), "wrong_audience"),
        (lambda: _token(iss="https://evil.test"), "wrong_issuer"),
        (lambda: _token(kid="k-unknown"), "unknown_kid"),
        (lambda: _token(RSA2, "k1"), "bad_signature"),
        (lambda: _token()[:-4] + "AAAA", "bad_signature"),
        (_alg_none, "alg_not_allowed"),
        (lambda: _token(exp=None), "invalid_token"),
        (lambda: _token(sub=None), "invalid_token"),
        (lambda: "not.a.jwt", "malformed"),
        (lambda: _token(RSA1, "k1", "RS512"), "alg_not_allowed"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "unknown-kid", "other-key", "tampered",
         "alg-none", "no-exp", "no-sub", "garbage", "alg-not-configured"],
)  # fmt: skip
async def test_refusals(make: Any, reason: str) -> None:
    verifier = _verifier(_Loader(_jwks(_jwk(RSA1, "k1"))), min_refresh_s=0)
    assert await _refused(verifier, make()) == reason


async def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    # The classic key-confusion forgery: HS256 "signed" with the RSA public key's PEM.
    from cryptography.hazmat.primitives import serialization

    pem = RSA1.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = _hs256(pem, int(time.time()))
    assert await _refused(_verifier(_Loader(_jwks(_jwk(RSA1, "k1")))), forged) == "alg_not_allowed"
    with pytest.raises(ValueError, match="asymmetric"):
        JwtVerifier(JwksCache(_Loader(b"{}")), issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"])


def _hs256(secret: bytes, now: int) -> str:
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "m", "exp": now + 60}).encode())
    sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


async def test_key_alg_mismatch_is_refused() -> None:
    verifier = _verifier(_Loader(_jwks(_jwk(RSA1, "k1", alg="RS256"))))
    assert await _refused(verifier, _token(RSA1, "k1", "PS256")) == "alg_not_allowed"


async def test_clock_skew_within_leeway_is_accepted() -> None:
    verifier = _verifier(_Loader(_jwks(_jwk(RSA1, "k1"))), leeway_s=120)
    assert (await verifier.verify(_token(exp=int(time.time()) - 60))).subject == "alice"
    strict = _verifier(_Loader(_jwks(_jwk(RSA1, "k1"))), leeway_s=0)
    assert await _refused(strict, _token(exp=int(time.time()) - 60)) == "expired"


async def test_key_rotation_refetches_once_for_a_new_kid_and_bounds_refetches() -> None:
    now = [0.0]
    loader = _Loader(_jwks(_jwk(RSA1, "k1")), _jwks(_jwk(RSA1, "k1"), _jwk(RSA2, "k2")))
    verifier = _verifier(loader, clock=lambda: now[0], min_refresh_s=30)
    await verifier.verify(_token())
    # A token with a new kid right after a fetch: within min_refresh_s, no fetch — refused.
    assert await _refused(verifier, _token(RSA2, "k2")) == "unknown_kid"
    assert loader.calls == 1
    now[0] = 31.0
    assert (await verifier.verify(_token(RSA2, "k2"))).subject == "alice"
    assert loader.calls == 2
    # Made-up kids cannot make the verifier hammer the IdP.
    for _ in range(20):
        await _refused(verifier, _token(RSA2, "made-up"))
    assert loader.calls == 2


async def test_jwks_outage_keeps_cached_keys_and_says_so_when_there_are_none() -> None:
    now = [0.0]
    loader = _Loader(_jwks(_jwk(RSA1, "k1")), b"fail")
    verifier = _verifier(loader, clock=lambda: now[0], cache_s=10)
    await verifier.verify(_token())
    now[0] = 11.0
    assert (await verifier.verify(_token(sub="bob"))).subject == "bob"  # refresh failed, old key still used
    assert loader.calls == 2
    down = _verifier(_Loader(b"fail"))
    with pytest.raises(Unauthenticated) as caught:
        await down.verify(_token())
    assert caught.value.reason == "keys_unavailable" and caught.value.retriable


async def test_jwks_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(_jwks(_jwk(RSA1, "k1"), {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"}))
    verifier = _verifier(file_loader(path))
    assert (await verifier.verify(_token())).subject == "alice"
    assert await _refused(verifier, _token(kid="sym")) == "unknown_kid"  # symmetric keys are never loaded


@pytest.fixture
async def idp() -> AsyncIterator[tuple[str, list[int]]]:
    hits: list[int] = []

    async def certs(request: web.Request) -> web.Response:
        hits.append(1)
        return web.Response(body=_jwks(_jwk(EC1, "e1")), content_type="application/json")

    app = web.Application()
    app.router.add_get("/certs", certs)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/certs", hits
    finally:
        await runner.cleanup()


async def test_jwks_from_a_url_through_the_authenticator(idp: tuple[str, list[int]]) -> None:
    url, hits = idp
    config = AuthConfig.model_validate(
        {"oidc": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": url, "scope_prefix": "llorch:"}}
    )
    auth = Authenticator(config)
    identity = await auth.authenticate(f"Bearer {_token(EC1, 'e1', 'ES256', scope='llorch:replicas other:x')}")
    assert identity.scopes == {Scope.replicas}
    await auth.authenticate(f"Bearer {_token(EC1, 'e1', 'ES256')}")
    assert len(hits) == 1
    unreachable = _verifier(url_loader("http://127.0.0.1:1/certs", timeout_s=0.5))
    assert await _refused(unreachable, _token()) == "keys_unavailable"


async def test_verified_tokens_are_remembered_until_they_expire() -> None:
    wall = [time.time()]
    verifier = JwtVerifier(JwksCache(_Loader(_jwks(_jwk(RSA1, "k1")))), issuer=ISSUER, audience=AUDIENCE,
                           cache_token_s=30, clock=lambda: wall[0])  # fmt: skip
    checks: list[str] = []
    real = verifier._verify

    async def counted(token: str) -> Any:
        checks.append(token)
        return await real(token)

    verifier._verify = counted  # type: ignore[method-assign]
    short = _token(exp=int(wall[0]) + 20)
    first = await verifier.verify(short)
    assert await verifier.verify(short) is first and len(checks) == 1  # remembered: one signature check
    wall[0] += 21  # past its exp: never answered from memory again
    await verifier.verify(short)  # (PyJWT's own clock and leeway still accept it)
    assert len(checks) == 2
    long_lived = _token(exp=int(time.time()) + 3600, sub="carol")
    await verifier.verify(long_lived)
    await verifier.verify(long_lived)
    assert len(checks) == 3
    wall[0] += 31  # remembered for at most cache_token_s
    await verifier.verify(long_lived)
    assert len(checks) == 4
