"""Rego policies: in-process with regopy (rego-cpp), or asked of an OPA server over HTTP.

The query (default ``data.llorch.decision``) sees this ``input``::

    {"kind": "outbound", "purpose": "fetch", "method": "GET", "url": "<redacted>", "scheme": "https",
     "host": "docs.python.org", "port": 443, "addresses": ["151.101.0.223"] | null, "identity": "alice"}
    {"kind": "write", "sink": "artifact", "artifact_kind": "trace", "size": 1234, "identity": "alice"}

and answers ``true``/``false`` or ``{"allow": bool, "rule": "name", "reason": "…"}``. Both fail
closed: an undefined result (rego-cpp reports a rule whose value is ``false`` as undefined, so
prefer the object form), a malformed answer, an evaluation error or (OPA) a server that does not
answer in time is a refusal (``rego:undefined``, ``rego:error``, ``opa:unavailable``…).

A write's text is not sent (it may be megabytes, and this policy does not redact); only its size.
The OPA server is asked about outbound requests only: writes are synchronous (log records) and are
not delayed by a network round trip; its :meth:`OpaPolicy.write` allows with rule ``opa:not-asked``.

>>> policy = RegoPolicy('''package llorch
... import rego.v1
... default decision := true
... decision := {"allow": false, "rule": "no-pastebin"} if input.host == "pastebin.com"''')  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp

from llama_orch.errors import ConfigError
from llama_orch.policy._hook import Decision, Outbound, Write, WriteDecision
from llama_orch.policy._redact import default_redactor
from llama_orch.policy._targets import TargetError, parse_target

log = logging.getLogger("llama_orch.policy")


def policy_input(request: Outbound | Write) -> dict[str, Any]:
    """The ``input`` document a Rego policy sees for ``request``."""
    if isinstance(request, Write):
        return {
            "kind": "write",
            "sink": request.sink,
            "artifact_kind": request.kind,
            "size": len(request.text),
            "identity": request.identity,
        }
    doc: dict[str, Any] = {
        "kind": "outbound",
        "purpose": request.purpose,
        "method": request.method,
        "url": default_redactor().redact_url(request.url),
        "addresses": list(request.addresses) or None,
        "identity": request.identity,
    }
    try:
        target = parse_target(request.url)
        doc.update(scheme=target.scheme, host=target.host, port=target.port)
    except TargetError:
        doc.update(scheme=None, host=None, port=None)
    return doc


def decision_from(result: Any, source: str) -> Decision:
    """A decision from what the query answered (fail closed on anything unexpected)."""
    if isinstance(result, bool):
        return Decision(result, f"{source}:{'allow' if result else 'deny'}")
    if isinstance(result, dict) and isinstance(result.get("allow"), bool):
        allow: bool = result["allow"]
        rule = result.get("rule")
        reason = result.get("reason")
        named = rule if isinstance(rule, str) and rule else ("allow" if allow else "deny")
        return Decision(allow, f"{source}:{named}", reason if isinstance(reason, str) else "")
    if result is None:
        return Decision(False, f"{source}:undefined", "the policy's decision is undefined for this input")
    return Decision(False, f"{source}:malformed", "the policy's decision is neither a bool nor {allow, rule}")


class RegoPolicy:
    """A Rego module evaluated in-process (regopy). Not shared across threads: one per event loop."""

    def __init__(self, source: str, *, query: str = "data.llorch.decision", name: str = "policy.rego") -> None:
        try:
            import regopy
        except ImportError as exc:  # pragma: no cover - regopy is a dependency; a broken install
            raise ConfigError("policy.rego needs the regopy package") from exc
        self._regopy = regopy
        self._interpreter = regopy.Interpreter()
        self._query = query
        try:
            self._interpreter.add_module(name.removesuffix(".rego"), source)
            probe = self._interpreter.query(query)
        except regopy.RegoError as exc:
            raise ConfigError(f"Rego policy {name}: {exc}") from None
        if not probe.ok():
            raise ConfigError(f"Rego policy {name} does not compile: {probe}")

    @classmethod
    def from_file(cls, path: Path, *, query: str = "data.llorch.decision") -> RegoPolicy:
        try:
            source = path.read_text()
        except OSError as exc:
            raise ConfigError(f"Rego policy {path}: {exc.strerror}") from None
        return cls(source, query=query, name=path.name)

    def evaluate(self, doc: dict[str, Any]) -> Decision:
        try:
            self._interpreter.set_input(self._regopy.Input(doc))
            output = self._interpreter.query(self._query)
        except self._regopy.RegoError as exc:
            log.warning("Rego policy failed to evaluate: %s", exc)
            return Decision(False, "rego:error", "the Rego policy failed to evaluate")
        if not output.ok():
            return Decision(False, "rego:error", "the Rego policy failed to evaluate")
        if len(output) == 0 or not output[0].expressions:
            return decision_from(None, "rego")
        return decision_from(output[0].expressions[0], "rego")

    async def outbound(self, request: Outbound) -> Decision:
        return self.evaluate(policy_input(request))

    def write(self, request: Write) -> WriteDecision:
        decision = self.evaluate(policy_input(request))
        return WriteDecision(decision.allow, decision.rule, decision.reason, text=request.text)


class OpaPolicy:
    """An OPA server's decision API (``POST {url}`` with ``{"input": …}``), for outbound requests."""

    def __init__(self, url: str, *, timeout_s: float = 1.0, session: aiohttp.ClientSession | None = None) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None

    async def outbound(self, request: Outbound) -> Decision:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self._url, json={"input": policy_input(request)}, timeout=self._timeout
            ) as response:
                if response.status != 200:
                    return Decision(False, "opa:unavailable", f"OPA answered HTTP {response.status}")
                body = json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("OPA server did not answer a decision: %s", type(exc).__name__)
            return Decision(False, "opa:unavailable", "the OPA server did not answer")
        if not isinstance(body, dict):
            return Decision(False, "opa:malformed", "OPA answered something that is not a JSON object")
        return decision_from(body.get("result"), "opa")

    def write(self, request: Write) -> WriteDecision:
        return WriteDecision(True, "opa:not-asked", text=request.text)

    async def aclose(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None
