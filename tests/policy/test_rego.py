"""Rego policies, in-process (regopy, real interpreter) and on an OPA server (a loopback fake)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llama_orch.errors import ConfigError
from llama_orch.policy import (
    OpaConfig,
    OpaPolicy,
    Outbound,
    PolicyChain,
    PolicyConfig,
    RegoConfig,
    RegoPolicy,
    Write,
    build_policy,
)

POLICY = """
package llorch
import rego.v1

default decision := {"allow": true, "rule": "default"}

decision := {"allow": false, "rule": "no-pastebin", "reason": "paste sites leak"} if {
    input.kind == "outbound"
    input.host == "pastebin.com"
}

decision := {"allow": false, "rule": "no-trace-from-bob"} if {
    input.kind == "write"
    input.artifact_kind == "trace"
    input.identity == "bob"
}
"""


async def test_rego_decides_outbound_and_writes() -> None:
    policy = RegoPolicy(POLICY)
    denied = await policy.outbound(Outbound("https://pastebin.com/raw/x", "fetch"))
    assert (denied.allow, denied.rule, denied.reason) == (False, "rego:no-pastebin", "paste sites leak")
    allowed = await policy.outbound(Outbound("https://docs.python.org/", "fetch"))
    assert (allowed.allow, allowed.rule) == (True, "rego:default")
    write = policy.write(Write("artifact", "t", kind="trace", identity="bob"))
    assert not write.allow and write.rule == "rego:no-trace-from-bob"
    assert policy.write(Write("artifact", "t", kind="trace", identity="alice")).text == "t"


async def test_rego_sees_the_resolved_addresses() -> None:
    policy = RegoPolicy(
        'package llorch\nimport rego.v1\ndefault decision := {"allow": true}\n'
        'decision := {"allow": false} if { some a in input.addresses; startswith(a, "10.") }'
    )
    assert (await policy.outbound(Outbound("http://x.test/", addresses=("8.8.8.8",)))).allow
    denied = await policy.outbound(Outbound("http://x.test/", addresses=("10.1.2.3",)))
    assert (denied.allow, denied.rule) == (False, "rego:deny")


async def test_a_bare_false_is_a_refusal_too() -> None:
    # rego-cpp reports a rule whose value is false as undefined; either way it refuses.
    policy = RegoPolicy(
        "package llorch\nimport rego.v1\ndefault decision := true\n"
        'decision := false if { some a in input.addresses; startswith(a, "10.") }'
    )
    assert (await policy.outbound(Outbound("http://x.test/", addresses=("8.8.8.8",)))).allow
    assert not (await policy.outbound(Outbound("http://x.test/", addresses=("10.1.2.3",)))).allow


async def test_rego_fails_closed() -> None:
    undefined = RegoPolicy("package llorch\nimport rego.v1\ndecision := true if input.never")
    assert (await undefined.outbound(Outbound("http://x.test/"))).rule == "rego:undefined"
    malformed = RegoPolicy('package llorch\ndecision := "yes"')
    assert (await malformed.outbound(Outbound("http://x.test/"))).rule == "rego:malformed"


def test_rego_syntax_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Rego policy"):
        RegoPolicy("package llorch\n this is { not rego")
    with pytest.raises(ConfigError, match="No such file"):
        RegoPolicy.from_file(tmp_path / "missing.rego")


async def test_build_policy_chains_builtin_then_rego(tmp_path: Path) -> None:
    path = tmp_path / "p.rego"
    path.write_text(POLICY)
    chain = build_policy(PolicyConfig(rego=RegoConfig(file=path), outbound={"fetch": {"allow_domains": ["*"]}}))
    assert isinstance(chain, PolicyChain)
    assert (await chain.outbound(Outbound("https://pastebin.com/x", "fetch"))).rule == "rego:no-pastebin"
    assert (await chain.outbound(Outbound("http://127.0.0.1/", "fetch"))).rule == "ssrf:loopback"


@pytest.fixture
async def opa() -> AsyncIterator[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    behaviour: dict[str, Any] = {"status": 200, "delay": 0.0}

    async def decide(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body["input"])
        await asyncio.sleep(behaviour["delay"])
        allow = body["input"].get("host") != "blocked.test"
        return web.json_response({"result": {"allow": allow, "rule": "opa-rule"}}, status=behaviour["status"])

    app = web.Application()
    app.router.add_post("/v1/data/llorch/decision", decide)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1/data/llorch/decision", seen, behaviour
    finally:
        await runner.cleanup()


async def test_opa_server_decides_outbound(opa: tuple[str, list[dict[str, Any]], dict[str, Any]]) -> None:
    url, seen, behaviour = opa
    policy = OpaPolicy(url, timeout_s=0.5)
    try:
        denied = await policy.outbound(Outbound("https://blocked.test/?token=abcdefgh", "fetch", identity="alice"))
        assert (denied.allow, denied.rule) == (False, "opa:opa-rule")
        assert seen[0]["host"] == "blocked.test" and seen[0]["identity"] == "alice"
        assert "abcdefgh" not in json.dumps(seen[0])  # the URL is sent redacted
        assert (await policy.outbound(Outbound("https://fine.test/"))).allow
        behaviour["status"] = 500
        assert (await policy.outbound(Outbound("https://fine.test/"))).rule == "opa:unavailable"
        behaviour.update(status=200, delay=2.0)
        assert (await policy.outbound(Outbound("https://fine.test/"))).rule == "opa:unavailable"
        assert policy.write(Write("log", "x")).rule == "opa:not-asked"
    finally:
        await policy.aclose()


async def test_opa_unreachable_fails_closed() -> None:
    policy = OpaPolicy("http://127.0.0.1:1/v1/data/x", timeout_s=0.5)
    try:
        assert (await policy.outbound(Outbound("https://fine.test/"))).rule == "opa:unavailable"
    finally:
        await policy.aclose()


def test_opa_config_in_build_policy() -> None:
    chain = build_policy(PolicyConfig(opa=OpaConfig(url="http://127.0.0.1:8181/v1/data/llorch/decision")))
    assert isinstance(chain, PolicyChain) and list(chain.names) == ["builtin", "opa"]
