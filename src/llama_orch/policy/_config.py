"""The ``policy:`` section of the orchestratord config (what the built-in policy enforces).

.. code-block:: yaml

    policy:
      outbound:
        fetch:                      # POST /v1/tools/fetch
          allow_domains: [docs.python.org, "*.readthedocs.io"]
          allow_schemes: [https]
        engines:                    # endpoints that replicas register
          allow_networks: [192.168.1.0/24]
      redaction:
        patterns: ['corp-[0-9a-f]{32}', 'session=(?P<secret>\\w+)']
        literals_env: [UPSTREAM_API_KEY]
      rego: {file: /etc/llama-orch/policy.rego}

Purposes not listed keep their defaults (below); an outbound request for a purpose with no rules
at all is refused (``purpose:unknown``).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llama_orch.policy._redact import Redactor
from llama_orch.policy._targets import FETCHABLE_SCHEMES

_LOOPBACK = ["127.0.0.0/8", "::1/128"]
_PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutboundRules(_Strict):
    """What one purpose may reach. Addresses that are not global (loopback, private, link-local,
    the metadata address 169.254.169.254, CGNAT, multicast…) are refused unless a network in
    ``allow_networks`` contains them."""

    allow_domains: list[str] = Field(
        default_factory=list,
        description='Hosts that may be reached: "example.com" (exactly), "*.example.com" (any subdomain, '
        'not the apex), "*" (any). IP literals are matched as written.',
    )
    deny_domains: list[str] = Field(default_factory=list, description="Hosts refused even when allowed above.")
    allow_schemes: list[str] = Field(default_factory=lambda: ["https", "http"])
    allow_networks: list[str] = Field(
        default_factory=list, description="CIDRs reachable even though they are not global (e.g. 192.168.1.0/24)."
    )

    @field_validator("allow_schemes")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        bad = sorted(set(value) - FETCHABLE_SCHEMES)
        if bad:
            raise ValueError(f"only http and https can be allowed, not {bad}")
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @field_validator("allow_domains", "deny_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            d = domain.strip().lower().removesuffix(".")
            if not d or (d.startswith("*") and d != "*" and not d.startswith("*.")):
                raise ValueError(f"domain {domain!r}: use 'name', '*.name' or '*'")
            out.append(d)
        return out


def _defaults() -> dict[str, OutboundRules]:
    return {
        # The fetch tool and search adapters reach nothing until domains are allowed.
        "fetch": OutboundRules(),
        "search": OutboundRules(),
        # Model downloads: any public host; loopback mirrors as before (plain http only there).
        "models": OutboundRules(allow_domains=["*"], allow_networks=list(_LOOPBACK)),
        # Engines registered by pool-managerd live on this host or the LAN, never link-local/metadata.
        "engines": OutboundRules(allow_domains=["*"], allow_networks=[*_LOOPBACK, *_PRIVATE]),
    }


class RedactionConfig(_Strict):
    patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions whose matches are hidden in logs, artifacts, records and errors; "
        "a group named 'secret' hides only that group.",
    )
    literals_env: list[str] = Field(
        default_factory=list,
        description="Names of environment variables whose values are secrets to hide wherever they appear.",
    )

    def redactor(self) -> Redactor:
        literals = [os.environ[name] for name in self.literals_env if os.environ.get(name)]
        return Redactor(self.patterns, literals)


class RegoConfig(_Strict):
    file: Path = Field(description="A Rego module; evaluated in-process for every decision.")
    query: str = Field("data.llorch.decision", description="Its decision: a bool or {allow, rule, reason}.")


class OpaConfig(_Strict):
    url: str = Field(description="OPA's decision API, e.g. http://127.0.0.1:8181/v1/data/llorch/decision")
    timeout_s: float = Field(1.0, gt=0, le=30)


class FetchConfig(_Strict):
    """Limits of the fetch tool (``POST /v1/tools/fetch``); a request may ask for less, never more."""

    max_bytes: int = Field(2 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    timeout_s: float = Field(15.0, gt=0, le=120, description="The whole fetch: DNS, connects, redirects, body.")
    connect_timeout_s: float = Field(5.0, gt=0, le=60)
    read_timeout_s: float = Field(5.0, gt=0, le=60, description="Between two chunks of the body.")
    max_redirects: int = Field(5, ge=0, le=20)
    cache_entries: int = Field(256, ge=0, le=100_000)
    cache_bytes: int = Field(32 * 1024 * 1024, ge=0)


class PolicyConfig(_Strict):
    outbound: dict[str, OutboundRules] = Field(default_factory=dict)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    rego: RegoConfig | None = None
    opa: OpaConfig | None = None

    def rules(self) -> dict[str, OutboundRules]:
        """The rules per purpose: the defaults, replaced purpose by purpose by what is configured."""
        return {**_defaults(), **self.outbound}
