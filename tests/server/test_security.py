"""Auth, scopes, rate limits, audit and the local dev mode on a real orchestratord over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from llama_orch.auth import Scope, client_ssl_context, hash_token, server_ssl_context
from llama_orch.engines.mock import MockSettings
from llama_orch.pools._managerd import Managerd, ManagerdConfig, Rejected
from llama_orch.server.app import ROUTES, create_app
from llama_orch.server.config import OrchestratorConfig, PoolConfig
from llama_orch.server.openapi import path_template
from tests.auth._certs import CA, server_pair
from tests.conftest import Serve, fast_config

TOKENS = {scope: f"tok-{scope.value}-0123456789abcdef" for scope in Scope}
ISSUER, AUDIENCE = "https://idp.test", "llama-orch"
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def secured_config(tmp_path: Path, **auth: Any) -> OrchestratorConfig:
    jwks = tmp_path / "jwks.json"
    jwk = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    config = {
        "tokens": [{"subject": s.value, "sha256": hash_token(t), "scopes": [s.value]} for s, t in TOKENS.items()],
        "oidc": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)},
        **auth,
    }
    return with_sections(fast_config(), auth=config, data_dir=str(tmp_path / "data"))


def with_sections(base: OrchestratorConfig, **sections: Any) -> OrchestratorConfig:
    """``base`` with whole config sections replaced (validated like a config file)."""
    return OrchestratorConfig.model_validate({**base.model_dump(mode="json"), **sections})


def bearer(scope: Scope | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"} if scope else {}


def _jwt(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": "data", **claims}
    return jwt.encode(body, EC_KEY, algorithm="ES256", headers={"kid": "k1"})


def test_every_route_has_a_scope() -> None:
    from llama_orch.server._security import SCOPES, UNLISTED

    operations = {r.operation_id for r in ROUTES}
    missing = operations - set(SCOPES)
    assert not missing, f"routes without a scope in server/_security.py SCOPES: {sorted(missing)}"
    assert set(SCOPES) <= operations, f"scopes of routes that do not exist: {sorted(set(SCOPES) - operations)}"
    # Every route the app serves is either in the route table or listed apart.
    app = create_app(fast_config())
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    served -= {("HEAD", path) for _, path in served}
    table = {(r.method, path_template(r.path)) for r in ROUTES}
    assert served - table == set(UNLISTED)


def _fill(path: str) -> str:
    # A replica id holds a dot (<pool>.<n>); any other id may too.
    path = path_template(path)
    return path.replace("{task_id}", "t-none").replace("{session_id}", "s-none").replace("{id}", "x.none")


async def test_scope_enforced_on_every_route(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    from llama_orch.server._security import ANY, SCOPES

    base = await serve(secured_config(tmp_path))
    for route in ROUTES:
        url = base + _fill(route.path)
        scope = SCOPES[route.operation_id]
        kwargs: dict[str, Any] = {"data": b"{}"} if route.method in ("POST", "PUT") else {}
        async with http.request(route.method, url, **kwargs) as resp:
            assert resp.status == 401, (route.operation_id, resp.status)
            body = await resp.json()
            assert body["code"] == "UNAUTHENTICATED" and resp.headers["WWW-Authenticate"].startswith("Bearer")
        for holder in Scope:
            async with http.request(route.method, url, headers=bearer(holder), **kwargs) as resp:
                allowed = scope == ANY or holder in (scope, Scope.admin)
                if allowed:
                    assert resp.status not in (401, 403), (route.operation_id, holder, resp.status, await resp.text())
                else:
                    assert resp.status == 403, (route.operation_id, holder, resp.status)
                    assert (await resp.json())["code"] == "FORBIDDEN"


async def test_front_door_needs_the_data_scope(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """The OpenAI front door is guarded like POST /v1/tasks, and refuses in OpenAI's error shape."""
    from llama_orch.server._security import FRONT_DOOR

    assert set(FRONT_DOOR.values()) == {Scope.data}
    base = await serve(secured_config(tmp_path))
    for method, path in FRONT_DOOR:
        kwargs: dict[str, Any] = {"data": b"{}"} if method == "POST" else {}
        async with http.request(method, base + path, **kwargs) as resp:
            assert resp.status == 401, (path, resp.status)
            error = (await resp.json())["error"]
            assert error["type"] == "authentication_error" and error["message"], (path, error)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        for holder in Scope:
            async with http.request(method, base + path, headers=bearer(holder), **kwargs) as resp:
                if holder in (Scope.data, Scope.admin):
                    assert resp.status not in (401, 403), (path, holder, resp.status, await resp.text())
                else:
                    assert resp.status == 403, (path, holder, resp.status)
                    assert (await resp.json())["error"]["type"] == "permission_error"


async def test_public_routes_need_no_identity(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    base = await serve(secured_config(tmp_path))
    for path in ("/healthz", "/openapi.json"):
        async with http.get(base + path) as resp:
            assert resp.status == 200
    async with http.get(base + "/no/such/route") as resp:
        assert resp.status == 404


async def test_bearer_tokens_and_jwts(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    base = await serve(secured_config(tmp_path))
    body = {"prompt": "hi", "max_tokens": 2}
    async with http.post(f"{base}/v1/tasks", json=body, headers=bearer(Scope.data)) as resp:
        assert resp.status == 202
    async with http.post(f"{base}/v1/tasks", json=body, headers={"Authorization": f"Bearer {_jwt()}"}) as resp:
        assert resp.status == 202
    for token, reason in [
        (_jwt(exp=int(time.time()) - 3600), "expired"),
        (_jwt(aud="other"), "wrong_audience"),
        ("nonsense-token", "invalid_token"),
    ]:
        async with http.post(f"{base}/v1/tasks", json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401
            err = await resp.json()
            assert err["details"]["reason"] == reason and token not in json.dumps(err)
    # the JWT's scope is data only
    async with http.get(f"{base}/v1/replicasets", headers={"Authorization": f"Bearer {_jwt()}"}) as resp:
        assert resp.status == 403


async def test_rate_limit_answers_429_with_headers(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    config = secured_config(tmp_path, rate_limits={"requests_per_minute": 3, "per_subject": {"admin": {}}})
    base = await serve(config)
    statuses = []
    for _ in range(4):
        async with http.get(f"{base}/v1/capabilities", headers=bearer(Scope.data)) as resp:
            statuses.append(resp.status)
            last = resp
            body = await resp.json()
    assert statuses == [200, 200, 200, 429]
    assert body["code"] == "RATE_LIMITED" and body["policy_label"] == "rate-limit:requests" and body["retriable"]
    assert int(last.headers["Retry-After"]) >= 1 and int(last.headers["X-Backoff-Ms"]) > 0
    assert last.headers["X-RateLimit-Limit"] == "3" and last.headers["X-RateLimit-Remaining"] == "0"
    # per identity: others are not limited
    async with http.get(f"{base}/v1/capabilities", headers=bearer(Scope.admin)) as resp:
        assert resp.status == 200


async def test_tokens_per_minute_counts_max_tokens(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    base = await serve(secured_config(tmp_path, rate_limits={"tokens_per_minute": 10}))
    headers = bearer(Scope.data)
    async with http.post(f"{base}/v1/tasks", json={"prompt": "a", "max_tokens": 8}, headers=headers) as resp:
        assert resp.status == 202 and resp.headers["X-RateLimit-Remaining"] == "2"
    async with http.post(f"{base}/v1/tasks", json={"prompt": "a", "max_tokens": 8}, headers=headers) as resp:
        assert resp.status == 429 and (await resp.json())["policy_label"] == "rate-limit:tokens"


async def test_registration_needs_the_replicas_scope_and_an_allowed_endpoint(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path, mock_engine_server: Any
) -> None:
    config = secured_config(tmp_path)
    pool = PoolConfig(id="default", replicas=0, mock=MockSettings()).model_dump(mode="json")
    base = await serve(with_sections(config, pools=[pool]))
    endpoint = await mock_engine_server(MockSettings(tokens_per_s=2000, first_token_ms=1, slots=1))
    replica = {"name": "r0", "pool": "default", "endpoint": endpoint, "model_ref": "mock:tiny", "slots": 1}
    body = {"host": "gpu-a", "replicas": [replica]}
    async with http.post(f"{base}/v1/replicas/register", json=body, headers=bearer(Scope.data)) as resp:
        assert resp.status == 403 and (await resp.json())["code"] == "FORBIDDEN"
    metadata = {**body, "replicas": [{**replica, "endpoint": "http://169.254.169.254:80"}]}
    async with http.post(f"{base}/v1/replicas/register", json=metadata, headers=bearer(Scope.replicas)) as resp:
        err = await resp.json()
        assert resp.status == 403 and err["code"] == "POLICY_DENIED" and err["policy_label"] == "ssrf:link-local"
    async with http.post(f"{base}/v1/replicas/register", json=body, headers=bearer(Scope.replicas)) as resp:
        assert resp.status == 200, await resp.text()
    # pool-managerd authenticates with its token; without one it is refused and exits
    managerd = Managerd(ManagerdConfig(orchestrator=base, name="gpu-b", pool="default", model_ref="mock:tiny",
                                       token=TOKENS[Scope.replicas]))  # fmt: skip
    anonymous = Managerd(ManagerdConfig(orchestrator=base, name="gpu-c", pool="default", model_ref="mock:tiny"))
    try:
        await managerd.start_engines()
        assert len((await managerd.register()).replicas) == 1
        await anonymous.start_engines()
        with pytest.raises(Rejected, match="401"):
            await anonymous.register()
    finally:
        await managerd.aclose()
        await anonymous.aclose()
    # admin actions leave audit records naming the identity, never the token
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["action"], r["identity"], r["outcome"]) for r in records] == [
        ("replica.register", "token:data", "refused (403)"),
        ("replica.register", "token:replicas", "refused (403)"),
        ("replica.register", "token:replicas", "ok"),
        ("replica.register", "token:replicas", "ok"),
        ("replica.register", "unauthenticated", "refused (401)"),
    ]
    assert not any(t in "\n".join(lines) for t in TOKENS.values())


async def test_drain_is_audited(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    base = await serve(secured_config(tmp_path))
    async with http.post(f"{base}/v1/pools/default/drain", json={}, headers=bearer(Scope.control)) as resp:
        assert resp.status == 200, await resp.text()
    (record,) = [json.loads(x) for x in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()]
    assert (record["action"], record["identity"]) == ("pool.drain", "token:control")
    assert record["target"] == "/v1/pools/default/drain"
    assert record["correlation_id"]


async def test_mtls_client_certificates(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    ca = CA(tmp_path, "ca")
    server = server_pair(ca)
    client = ca.issue("client", "pool-host")
    rogue = CA(tmp_path, "rogue").issue("rogue", "pool-host")
    mtls = {"ca_file": str(ca.pair.cert), "cert_file": str(server.cert), "key_file": str(server.key),
            "subjects": {"pool-host": ["replicas"]}}  # fmt: skip
    config = with_sections(fast_config(), auth={"mtls": mtls})
    runner = web.AppRunner(create_app(config), handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    assert config.auth.mtls is not None
    context = server_ssl_context(server.cert, server.key, ca.pair.cert, required=False)
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    base = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        good = client_ssl_context(ca.pair.cert, client.cert, client.key)
        async with http.get(f"{base}/v1/replicasets", ssl=good) as resp:
            assert resp.status == 403  # identity pool-host has replicas, not control
        async with http.post(f"{base}/v1/replicas/x/heartbeat", json={"ready": True}, ssl=good) as resp:
            assert resp.status == 404  # authenticated and allowed: the replica is unknown
        async with http.get(f"{base}/v1/capabilities", ssl=client_ssl_context(ca.pair.cert)) as resp:
            assert resp.status == 401
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{base}/v1/capabilities", ssl=client_ssl_context(ca.pair.cert, rogue.cert, rogue.key)):
                pass
    finally:
        await runner.cleanup()


async def test_dev_mode_is_open_on_loopback(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config())
    async with http.get(f"{base}/v1/replicasets") as resp:
        assert resp.status == 200


def test_refuses_a_public_bind_without_auth(tmp_path: Path) -> None:
    config = tmp_path / "pools.yaml"
    config.write_text("pools:\n  - id: default\n    engine: mock\n")
    result = subprocess.run(
        [sys.executable, "-m", "llama_orch.server", "--config", str(config), "--host", "0.0.0.0", "--port", "0",
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "refusing to serve on 0.0.0.0 without authentication" in result.stderr


def test_hash_token_prints_a_token_and_its_hash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llama_orch.server", "--hash-token"], capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    lines = dict(line.split(":", 1) for line in result.stdout.strip().splitlines())
    assert hash_token(lines["token"].strip()) == lines["sha256"].strip()
