"""The built-in policy: per-purpose domain, scheme and address rules, and the redactor for writes.

Outbound rules, checked in this order (the first that refuses names itself in the decision):

1. the URL itself (:func:`~llama_orch.policy._targets.parse_target`): ``url:*`` rules;
2. ``purpose:unknown`` — no rules for this purpose;
3. ``scheme:not-allowed`` — not in ``allow_schemes``;
4. ``domain:denied`` / ``domain:not-allowed`` — the host against ``deny_domains`` then ``allow_domains``;
5. ``ssrf:<class>`` — the literal IP, or every resolved address, that is not global
   (``loopback``, ``private``, ``link-local``…) and in no ``allow_networks`` CIDR.

An allowed request is decided by ``domain:allowed`` (URL only) or ``address:allowed`` /
``address:allowed-network`` (with its addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from llama_orch.policy._config import OutboundRules, PolicyConfig
from llama_orch.policy._hook import Decision, Outbound, Write, WriteDecision
from llama_orch.policy._redact import Redactor, default_redactor
from llama_orch.policy._targets import IPAddress, TargetError, address_class, embedded_ipv4, parse_ip, parse_target

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BuiltinPolicy:
    """The policy from config. ``redactor`` defaults to the process-wide one."""

    def __init__(self, rules: Mapping[str, OutboundRules] | None = None, *, redactor: Redactor | None = None) -> None:
        self._rules = dict(rules if rules is not None else PolicyConfig().rules())
        self._networks: dict[str, list[Network]] = {
            purpose: [ipaddress.ip_network(n, strict=False) for n in r.allow_networks]
            for purpose, r in self._rules.items()
        }
        self._redactor = redactor

    @classmethod
    def from_config(cls, config: PolicyConfig) -> BuiltinPolicy:
        return cls(config.rules(), redactor=config.redaction.redactor())

    @property
    def redactor(self) -> Redactor:
        return self._redactor or default_redactor()

    async def outbound(self, request: Outbound) -> Decision:
        return self.check(request)

    def check(self, request: Outbound) -> Decision:
        """The same decision as :meth:`outbound`, synchronously."""
        try:
            target = parse_target(request.url)
        except TargetError as exc:
            return Decision(False, exc.rule, exc.reason)
        rules = self._rules.get(request.purpose)
        if rules is None:
            return Decision(False, "purpose:unknown", f"no outbound rules for purpose {request.purpose!r}")
        if target.scheme not in rules.allow_schemes:
            return Decision(False, "scheme:not-allowed", f"{target.scheme} is not allowed for {request.purpose}")
        if _matches(target.host, rules.deny_domains):
            return Decision(False, "domain:denied", f"{target.host} is denied for {request.purpose}")
        if not _matches(target.host, rules.allow_domains):
            return Decision(
                False, "domain:not-allowed", f"{target.host} is not an allowed domain for {request.purpose}"
            )
        addresses: list[IPAddress] = []
        if target.ip is not None:
            addresses.append(target.ip)
        for text in request.addresses:
            try:
                addresses.append(parse_ip(text))
            except ValueError:
                return Decision(False, "address:invalid", "a resolved address does not parse")
        if not addresses:
            return Decision(True, "domain:allowed", f"{target.host} is allowed for {request.purpose}")
        networks = self._networks[request.purpose]
        via_network = False
        for ip in addresses:
            kind = address_class(ip)
            if kind == "global":
                continue
            if _in_networks(ip, networks):
                via_network = True
                continue
            return Decision(False, f"ssrf:{kind}", f"{target.host} points at a {kind} address ({ip})")
        if via_network:
            return Decision(True, "address:allowed-network", f"{target.host} is in an allowed network")
        return Decision(True, "address:allowed", f"{target.host} resolves to global addresses only")

    def write(self, request: Write) -> WriteDecision:
        text, count = self.redactor.redact(request.text)
        rule = "redact:applied" if count else "redact:clean"
        return WriteDecision(True, rule, text=text, redactions=count)


def _matches(host: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _in_networks(ip: IPAddress, networks: list[Network]) -> bool:
    # What an IPv6 address carries is what it reaches: ::ffff:10.0.0.1 is 10.0.0.1.
    forms: list[IPAddress] = [*embedded_ipv4(ip)] or [ip]
    return all(any(form.version == net.version and form in net for net in networks) for form in forms)
