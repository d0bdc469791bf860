"""The built-in policy, the chain, write decisions, and decisions logged with the rule that decided."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from llama_orch.policy import (
    BuiltinPolicy,
    Decision,
    Outbound,
    OutboundRules,
    PolicyChain,
    PolicyConfig,
    PolicyDenied,
    PolicyHook,
    Redactor,
    StaticResolver,
    Write,
    WriteDecision,
    build_policy,
    vet_outbound,
)


def test_defaults_per_purpose() -> None:
    policy = BuiltinPolicy()
    # fetch reaches nothing until configured
    assert policy.check(Outbound("https://docs.python.org/3/", "fetch")).rule == "domain:not-allowed"
    # model downloads: any public host, and loopback mirrors
    assert policy.check(Outbound("https://huggingface.co/x", "models", addresses=("18.1.2.3",))).allow
    assert policy.check(Outbound("http://127.0.0.1:9000/m.gguf", "models")).allow
    assert policy.check(Outbound("http://10.0.0.1/m.gguf", "models")).rule == "ssrf:private"
    # engines: this host and the LAN, never link-local or metadata
    assert policy.check(Outbound("http://192.168.1.20:8000", "engines")).rule == "address:allowed-network"
    assert policy.check(Outbound("http://169.254.169.254/", "engines")).rule == "ssrf:link-local"
    assert policy.check(Outbound("http://gpu-box.lan:8000", "engines", addresses=("fe80::2",))).rule == (
        "ssrf:link-local"
    )
    assert policy.check(Outbound("http://x.test/", "nonsense")).rule == "purpose:unknown"


def test_configured_purposes_replace_their_defaults_only() -> None:
    config = PolicyConfig(outbound={"fetch": OutboundRules(allow_domains=["docs.test"])})
    rules = config.rules()
    assert rules["fetch"].allow_domains == ["docs.test"] and rules["models"].allow_domains == ["*"]


@pytest.mark.parametrize(
    "bad",
    [
        {"allow_schemes": ["file"]},
        {"allow_schemes": ["gopher"]},
        {"allow_networks": ["10.0.0.0/33"]},
        {"allow_domains": ["*foo.com"]},
        {"allow_domains": [""]},
        {"unknown": 1},
    ],
)
def test_bad_rules_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OutboundRules.model_validate(bad)


def test_write_redacts_and_names_the_rule() -> None:
    policy = BuiltinPolicy(redactor=Redactor(literals=["canary-123456"]))
    decision = policy.write(Write("artifact", "prompt canary-123456", kind="trace"))
    assert decision.allow and decision.rule == "redact:applied" and decision.redactions == 1
    assert "canary" not in decision.text
    assert policy.write(Write("log", "plain")).rule == "redact:clean"


class _DenyWrites:
    async def outbound(self, request: Outbound) -> Decision:
        return Decision(True, "test:ok")

    def write(self, request: Write) -> WriteDecision:
        if request.kind == "secret-dump":
            return WriteDecision(False, "test:no-dumps", "dumps are not stored", text="")
        return WriteDecision(True, "test:ok", text=request.text.upper(), redactions=1)


async def test_chain_first_refusal_decides_and_writes_flow_through() -> None:
    assert isinstance(_DenyWrites(), PolicyHook)
    chain = PolicyChain([BuiltinPolicy(redactor=Redactor(literals=["canary-123456"])), _DenyWrites()],
                        ["builtin", "test"])  # fmt: skip
    denied = await chain.outbound(Outbound("http://10.0.0.1/", "fetch"))
    assert not denied.allow and denied.rule == "domain:not-allowed"
    allowed = await chain.outbound(Outbound("http://192.168.0.5/", "engines"))
    assert allowed.allow and allowed.rule == "test:ok"
    written = chain.write(Write("artifact", "x canary-123456"))
    assert written.text == "X [REDACTED]" and written.redactions == 2
    refused = chain.write(Write("artifact", "x", kind="secret-dump"))
    assert not refused.allow and refused.rule == "test:no-dumps"
    with pytest.raises(PolicyDenied) as caught:
        refused.raise_for_denial()
    assert caught.value.envelope().policy_label == "test:no-dumps"
    with pytest.raises(ValueError, match="at least one"):
        PolicyChain([])


def test_build_policy_is_the_builtin_alone_by_default() -> None:
    assert isinstance(build_policy(PolicyConfig()), BuiltinPolicy)


async def test_every_outbound_decision_is_logged_with_its_rule(caplog: pytest.LogCaptureFixture) -> None:
    policy = BuiltinPolicy({"engines": OutboundRules(allow_domains=["*"], allow_networks=["192.168.0.0/16"])})
    resolver = StaticResolver({"gpu.lan": ["192.168.3.4"], "meta.lan": ["169.254.169.254"]})
    with caplog.at_level(logging.INFO, logger="llama_orch.policy"):
        vetted = await vet_outbound(policy, "http://gpu.lan:8000/?token=s3cr3tvalue", purpose="engines",
                                    resolver=resolver)  # fmt: skip
        with pytest.raises(PolicyDenied):
            await vet_outbound(policy, "http://meta.lan/", purpose="engines", resolver=resolver)
    assert vetted.address == "192.168.3.4"
    records = [r for r in caplog.records if hasattr(r, "policy_rule")]
    rules = [(r.policy_rule, r.policy_decision) for r in records]  # type: ignore[attr-defined]
    assert rules == [
        ("domain:allowed", "allow"),
        ("address:allowed-network", "allow"),
        ("domain:allowed", "allow"),
        ("ssrf:link-local", "deny"),
    ]
    assert all("s3cr3tvalue" not in r.getMessage() for r in caplog.records)
