"""Policy (OC-CLI-2503, OC-CLI-3002, OC-CLI-3003): the one hook consulted for every outbound
request and every artifact, record and log write; the built-in policy from config; Rego policies
in-process or on an OPA server; safe fetch with SSRF defences; search adapters; the redactor.

>>> policy = build_policy(PolicyConfig())  # the built-in policy alone
>>> policy.check(Outbound("http://169.254.169.254/latest/meta-data", purpose="fetch")).rule
'domain:not-allowed'
"""

from __future__ import annotations

from llama_orch.policy._builtin import BuiltinPolicy
from llama_orch.policy._cache import CachedResponse, FetchCache
from llama_orch.policy._config import FetchConfig, OpaConfig, OutboundRules, PolicyConfig, RedactionConfig, RegoConfig
from llama_orch.policy._fetch import (
    FetchFailed,
    FetchLimits,
    FetchResult,
    Hop,
    PinnedBackend,
    ResolveError,
    Resolver,
    SafeFetcher,
    StaticResolver,
    Vetted,
    vet_outbound,
)
from llama_orch.policy._hook import Decision, Outbound, PolicyChain, PolicyDenied, PolicyHook, Write, WriteDecision
from llama_orch.policy._redact import REDACTED, Redactor, default_redactor, redact_secrets, set_default_redactor
from llama_orch.policy._rego import OpaPolicy, RegoPolicy
from llama_orch.policy._search import CachedSearch, SearchAdapter, SearchHit, SearxngSearch
from llama_orch.policy._targets import Target, TargetError, address_class, parse_target


def build_policy(config: PolicyConfig) -> BuiltinPolicy | PolicyChain:
    """The policy ``config`` describes: the built-in policy, then a Rego module, then an OPA server."""
    builtin = BuiltinPolicy.from_config(config)
    hooks: list[PolicyHook] = [builtin]
    names = ["builtin"]
    if config.rego is not None:
        hooks.append(RegoPolicy.from_file(config.rego.file, query=config.rego.query))
        names.append("rego")
    if config.opa is not None:
        hooks.append(OpaPolicy(config.opa.url, timeout_s=config.opa.timeout_s))
        names.append("opa")
    return builtin if len(hooks) == 1 else PolicyChain(hooks, names)


__all__ = [
    "REDACTED",
    "BuiltinPolicy",
    "CachedResponse",
    "CachedSearch",
    "Decision",
    "FetchCache",
    "FetchConfig",
    "FetchFailed",
    "FetchLimits",
    "FetchResult",
    "Hop",
    "OpaConfig",
    "OpaPolicy",
    "Outbound",
    "OutboundRules",
    "PinnedBackend",
    "PolicyChain",
    "PolicyConfig",
    "PolicyDenied",
    "PolicyHook",
    "RedactionConfig",
    "Redactor",
    "RegoConfig",
    "RegoPolicy",
    "ResolveError",
    "Resolver",
    "SafeFetcher",
    "SearchAdapter",
    "SearchHit",
    "SearxngSearch",
    "StaticResolver",
    "Target",
    "TargetError",
    "Vetted",
    "Write",
    "WriteDecision",
    "address_class",
    "build_policy",
    "default_redactor",
    "parse_target",
    "redact_secrets",
    "set_default_redactor",
    "vet_outbound",
]
