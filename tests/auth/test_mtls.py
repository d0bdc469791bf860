"""mTLS: a real TLS server on loopback, client certificates accepted, refused, or absent."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from llama_orch.auth import (
    AuthConfig,
    Authenticator,
    Scope,
    Unauthenticated,
    certificate_subject,
    client_ssl_context,
    server_ssl_context,
)
from llama_orch.errors import OrchError
from tests.auth._certs import CA, Pair, server_pair

Serve = Callable[[bool], Awaitable[str]]


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Pair]:
    ca = CA(tmp_path, "clients-ca")
    rogue = CA(tmp_path, "rogue-ca")
    return {
        "ca": ca.pair,
        "server": server_pair(ca),
        "pool": ca.issue("pool", "gpu1", san=[x509.UniformResourceIdentifier("spiffe://lab/pool-managerd/gpu1")]),
        "cn-only": ca.issue("cn", "dev-laptop"),
        "rogue": rogue.issue("rogue", "gpu1", san=[x509.UniformResourceIdentifier("spiffe://lab/pool-managerd/gpu1")]),
    }


@pytest.fixture
async def serve(pki: dict[str, Pair]) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def _serve(required: bool) -> str:
        config = AuthConfig.model_validate(
            {
                "mtls": {
                    "ca_file": str(pki["ca"].cert),
                    "cert_file": str(pki["server"].cert),
                    "key_file": str(pki["server"].key),
                    "required": required,
                    "subjects": {"spiffe://lab/pool-managerd/gpu1": ["replicas"]},
                    "default_scopes": ["data"],
                }
            }
        )
        auth = Authenticator(config)
        assert config.mtls is not None

        async def whoami(request: web.Request) -> web.Response:
            peercert = request.transport.get_extra_info("peercert") if request.transport else None
            try:
                identity = await auth.authenticate(request.headers.get("Authorization"), peercert)
            except OrchError as exc:
                return web.json_response({"code": exc.code.value}, status=exc.status)
            return web.json_response({"subject": identity.subject, "scopes": sorted(identity.scopes)})

        app = web.Application()
        app.router.add_get("/whoami", whoami)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        context = server_ssl_context(
            config.mtls.cert_file, config.mtls.key_file, config.mtls.ca_file, required=config.mtls.required
        )
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        runners.append(runner)
        return f"https://127.0.0.1:{runner.addresses[0][1]}"

    yield _serve
    for runner in runners:
        await runner.cleanup()


async def _get(base: str, context: ssl.SSLContext) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/whoami", ssl=context) as resp:
        return resp.status, await resp.json()


async def test_a_client_certificate_from_the_ca_is_an_identity(serve: Serve, pki: dict[str, Pair]) -> None:
    base = await serve(True)
    status, body = await _get(base, client_ssl_context(pki["ca"].cert, pki["pool"].cert, pki["pool"].key))
    assert status == 200 and body == {"subject": "spiffe://lab/pool-managerd/gpu1", "scopes": ["replicas"]}
    status, body = await _get(base, client_ssl_context(pki["ca"].cert, pki["cn-only"].cert, pki["cn-only"].key))
    assert body == {"subject": "dev-laptop", "scopes": ["data"]}


@pytest.mark.parametrize("which", ["rogue", None])
async def test_a_wrong_or_missing_certificate_fails_the_handshake(
    serve: Serve, pki: dict[str, Pair], which: str | None
) -> None:
    base = await serve(True)
    pair = pki[which] if which else None
    context = client_ssl_context(pki["ca"].cert, pair.cert if pair else None, pair.key if pair else None)
    with pytest.raises(aiohttp.ClientError):
        await _get(base, context)


async def test_optional_mode_without_a_certificate_needs_another_credential(serve: Serve, pki: dict[str, Pair]) -> None:
    base = await serve(False)
    status, body = await _get(base, client_ssl_context(pki["ca"].cert))
    assert status == 401 and body == {"code": "UNAUTHENTICATED"}
    # a rogue certificate is still refused at the handshake in optional mode
    with pytest.raises(aiohttp.ClientError):
        await _get(base, client_ssl_context(pki["ca"].cert, pki["rogue"].cert, pki["rogue"].key))


def test_certificate_subject_order() -> None:
    cert = {
        "subject": ((("commonName", "cn-name"),),),
        "subjectAltName": (("DNS", "dns-name"), ("URI", "spiffe://x/y")),
    }
    assert certificate_subject(cert) == "spiffe://x/y"
    assert certificate_subject({"subject": ((("commonName", "cn-name"),),), "subjectAltName": (("DNS", "d"),)}) == "d"
    assert certificate_subject({"subject": ((("commonName", "cn-name"),),)}) == "cn-name"
    assert certificate_subject({}) is None


async def test_empty_certificate_is_refused() -> None:
    from llama_orch.auth import CertificateIdentities

    with pytest.raises(Unauthenticated) as caught:
        CertificateIdentities({}, frozenset({Scope.data})).identity({"subject": ()})
    assert caught.value.reason == "certificate"
