"""The one policy hook: consulted for every outbound request and every artifact, record and log write.

::

    PolicyHook                      the interface (two methods)
    ├── BuiltinPolicy               from config: domains, schemes, address classes, redaction
    ├── RegoPolicy                  a Rego module evaluated in-process (regopy)
    ├── OpaPolicy                   an OPA server's decision API (outbound only)
    └── PolicyChain                 several in order: the first refusal decides

``outbound`` is asked twice per hop by :func:`vet_outbound`: once with the URL alone (before any
DNS query, so a refused name is never even looked up), then with the addresses it resolved to.
``write`` is synchronous because log records are written synchronously; it returns the text to
write (redacted) or refuses the write.

Every decision is logged on ``llama_orch.policy`` with ``policy_rule`` (the rule that decided),
``policy_decision`` (``allow``/``deny``) and ``policy_kind`` — except decisions about log records
themselves, which would log forever; those are counted by the caller instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from llama_orch.errors import OrchError
from llama_orch.policy._redact import default_redactor
from llama_orch_api import ErrorCode

log = logging.getLogger("llama_orch.policy")


@dataclass(frozen=True)
class Outbound:
    """An outbound request about to be made: the fetch tool, a search adapter, a model download,
    an engine endpoint a replica registers. ``addresses`` is empty on the first ask (the URL alone)
    and holds every address the host resolved to on the second."""

    url: str
    purpose: str = "fetch"
    method: str = "GET"
    identity: str | None = None
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Write:
    """Something about to be written: ``sink`` is ``artifact``, ``record``, ``log``, ``narration``…"""

    sink: str
    text: str
    kind: str | None = None
    identity: str | None = None


@dataclass(frozen=True)
class Decision:
    """A hook's answer; ``rule`` names the rule that decided (``domain:allowed``, ``ssrf:loopback``…)."""

    allow: bool
    rule: str
    reason: str = ""

    def raise_for_denial(self) -> None:
        if not self.allow:
            raise PolicyDenied(self.rule, self.reason)


@dataclass(frozen=True)
class WriteDecision(Decision):
    """A write decision, with the text to write instead (secrets replaced) and how many were."""

    text: str = ""
    redactions: int = 0


class PolicyDenied(OrchError):
    """``403 POLICY_DENIED``: a policy rule refused the request or the write (``policy_label`` is the rule)."""

    def __init__(self, rule: str, reason: str) -> None:
        message = default_redactor().clean(f"refused by policy rule {rule!r}: {reason}" if reason else rule)
        super().__init__(ErrorCode.POLICY_DENIED, message, policy_label=rule, details={"rule": rule})
        self.rule = rule


@runtime_checkable
class PolicyHook(Protocol):
    """What every policy answers. Implementations must not raise for a refusal: they answer one."""

    async def outbound(self, request: Outbound) -> Decision: ...

    def write(self, request: Write) -> WriteDecision: ...


def log_decision(kind: str, decision: Decision, subject: str, *, source: str) -> None:
    """Log one decision with the rule that made it (``subject`` must already be redacted)."""
    verdict = "allow" if decision.allow else "deny"
    log.info(
        "policy %s %s %s by %s (%s)",
        source,
        verdict,
        kind,
        decision.rule,
        subject,
        extra={
            "policy_rule": decision.rule,
            "policy_decision": verdict,
            "policy_kind": kind,
            "policy_source": source,
            "narration": f"{'allowed' if decision.allow else 'refused'} {kind} {subject} ({decision.rule})",
        },
    )


@dataclass
class PolicyChain:
    """Several hooks in order. An outbound request needs every hook's yes; the first no decides.
    A write passes through each hook in turn (each redacts the previous one's output)."""

    hooks: Sequence[PolicyHook]
    names: Sequence[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.hooks:
            raise ValueError("a policy chain needs at least one hook")
        if not self.names:
            self.names = [type(hook).__name__ for hook in self.hooks]

    async def outbound(self, request: Outbound) -> Decision:
        decision = Decision(False, "chain:empty")
        for name, hook in zip(self.names, self.hooks, strict=True):
            decision = await hook.outbound(request)
            if not decision.allow:
                return replace(decision, rule=decision.rule if ":" in decision.rule else f"{name}:{decision.rule}")
        return decision

    def write(self, request: Write) -> WriteDecision:
        total = 0
        decision = WriteDecision(True, "chain:empty", text=request.text)
        for hook in self.hooks:
            decision = hook.write(request)
            if not decision.allow:
                return decision
            total += decision.redactions
            request = replace(request, text=decision.text)
        return replace(decision, redactions=total)
