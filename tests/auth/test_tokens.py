"""Static bearer tokens, the authenticator, scopes, and the loopback-only dev mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llama_orch.auth import (
    LOCAL_DEV,
    AuthConfig,
    Authenticator,
    Forbidden,
    Identity,
    Scope,
    StaticTokens,
    Unauthenticated,
    check_bind,
    hash_token,
    new_token,
)
from llama_orch.errors import ConfigError

CI_TOKEN = new_token()


def _auth(**extra: object) -> Authenticator:
    return Authenticator(
        AuthConfig.model_validate(
            {
                "tokens": [
                    {"subject": "ci", "sha256": hash_token(CI_TOKEN), "scopes": ["data", "artifacts"]},
                    {"subject": "pool", "env": "LLORCH_TEST_POOL_TOKEN", "scopes": ["replicas"]},
                    {"subject": "ops", "sha256": hash_token("ops-token-0123456789"), "scopes": ["admin"]},
                ],
                **extra,
            }
        )
    )


def test_tokens_are_stored_hashed() -> None:
    assert hash_token("x") == "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    assert new_token().startswith("llorch_") and new_token() != new_token()
    store = StaticTokens([("ci", hash_token(CI_TOKEN), [Scope.data])])
    assert CI_TOKEN not in repr(vars(store))
    assert store.verify(CI_TOKEN) == Identity("ci", "token", frozenset({Scope.data}))
    assert store.verify(CI_TOKEN + "x") is None and store.verify("") is None
    with pytest.raises(ValueError, match="sha256"):
        StaticTokens([("ci", "md5:abc", [])])


async def test_bearer_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLORCH_TEST_POOL_TOKEN", "pool-secret-token-123")
    auth = _auth()
    ci = await auth.authenticate(f"Bearer {CI_TOKEN}")
    assert ci.label == "token:ci" and ci.scopes == {Scope.data, Scope.artifacts}
    assert (await auth.authenticate("bearer   pool-secret-token-123 ")).subject == "pool"
    for header, reason in [
        (None, "missing"),
        ("", "missing"),
        (f"Basic {CI_TOKEN}", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer wrong-token", "invalid_token"),
    ]:
        with pytest.raises(Unauthenticated) as caught:
            await auth.authenticate(header)
        assert caught.value.reason == reason and CI_TOKEN not in caught.value.message
        assert caught.value.www_authenticate.startswith('Bearer realm="llama-orch"')


async def test_an_env_token_that_is_unset_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLORCH_TEST_POOL_TOKEN", raising=False)
    auth = _auth()
    assert len(auth.tokens) == 2
    with pytest.raises(Unauthenticated):
        await auth.authenticate("Bearer pool-secret-token-123")


async def test_scopes_and_admin() -> None:
    auth = _auth()
    ci = await auth.authenticate(f"Bearer {CI_TOKEN}")
    auth.authorize(ci, Scope.data)
    with pytest.raises(Forbidden) as caught:
        auth.authorize(ci, Scope.replicas)
    assert caught.value.status == 403 and caught.value.policy_label == "scope:replicas"
    ops = await auth.authenticate("Bearer ops-token-0123456789")
    for scope in Scope:
        auth.authorize(ops, scope)


async def test_dev_mode_is_open_and_loopback_only() -> None:
    off = Authenticator(AuthConfig())
    assert not off.enabled and await off.authenticate(None) is LOCAL_DEV
    assert all(LOCAL_DEV.allows(s) for s in Scope)
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert "local dev mode" in check_bind(host, AuthConfig())
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        with pytest.raises(ConfigError, match="without authentication"):
            check_bind(host, AuthConfig())
    assert check_bind("0.0.0.0", _auth().config) == "authentication on (tokens)"


@pytest.mark.parametrize(
    "bad",
    [
        {"tokens": [{"subject": "x"}]},
        {"tokens": [{"subject": "x", "sha256": "sha256:zz", "scopes": ["data"]}]},
        {"tokens": [{"subject": "x", "sha256": hash_token("a"), "env": "E"}]},
        {"tokens": [{"subject": "x", "sha256": hash_token("a"), "scopes": ["root"]}]},
        {"oidc": {"issuer": "i", "audience": "a"}},
        {"oidc": {"issuer": "i", "audience": "a", "jwks_file": "f", "algorithms": ["HS256"]}},
        {"oidc": {"issuer": "i", "audience": "a", "jwks_file": "f", "algorithms": ["none"]}},
        {"rate_limits": {"requests_per_minute": 0}},
        {"nonsense": True},
    ],
)
def test_bad_auth_config(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AuthConfig.model_validate(bad)
