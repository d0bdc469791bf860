"""Security and observability around every route: one middleware, one scope table.

For each request that matched a route, :func:`security_middleware`:

1. opens a server span (the client's ``traceparent`` as parent) tagged with the correlation id;
2. authenticates (:class:`~llama_orch.auth.Authenticator`: bearer token, JWT, client certificate;
   the local dev mode when no method is configured) — ``401`` with ``WWW-Authenticate``;
3. checks the route's scope from :data:`SCOPES` — ``403 FORBIDDEN``;
4. takes the identity's rate limit (requests; and ``max_tokens`` for task admission) — ``429
   RATE_LIMITED`` with ``Retry-After``, ``X-Backoff-Ms`` and ``X-RateLimit-*``;
5. runs the handler, then counts the request (route template, method, status), writes an audit
   record for admin actions (:data:`AUDITED`), and remembers who admitted each task so its record
   and metrics name the identity (never the credential).

:data:`SCOPES` names the scope of every operation of the route table; ``tests/server`` fails when a
route has none. A route that is somehow missing from it at run time needs ``admin`` (fail closed).

Every artifact write — task records, ``POST /v1/artifacts``, fetch traces — goes through
:class:`PolicyArtifactStore`, which asks the policy hook (``write``, sink ``artifact``) and stores
the redacted content; task records also feed the task metrics and the queue-wait/engine spans.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web import AbstractRoute
from opentelemetry import trace
from opentelemetry.context import Context
from pydantic import ValidationError

from llama_orch.artifacts import ArtifactStore
from llama_orch.auth import (
    LOCAL_DEV,
    AuditLog,
    AuditRecord,
    AuthConfig,
    Authenticator,
    Identity,
    RateLimited,
    RateState,
    Scope,
    Unauthenticated,
)
from llama_orch.errors import OrchError
from llama_orch.policy import (
    FetchCache,
    FetchFailed,
    FetchLimits,
    PolicyConfig,
    PolicyDenied,
    PolicyHook,
    Resolver,
    SafeFetcher,
    Write,
    build_policy,
    default_redactor,
    vet_outbound,
)
from llama_orch.scheduler import redact_tokens
from llama_orch.server._http import ADMITTED, CID, Handler, Route, error_response
from llama_orch.server._openai_routes import answer_error
from llama_orch.server.openapi import path_template
from llama_orch.telemetry import Metrics, TelemetryConfig, Tracing, context_of
from llama_orch_api import API_VERSION, ArtifactCreate, ArtifactRef, ErrorCode, ReplicaRegistration

log = logging.getLogger("llama_orch.server.security")

PUBLIC = "public"
"""No identity needed (``/healthz``, ``/openapi.json``)."""
ANY = "any"
"""Any authenticated identity, whatever its scopes (``/v1/capabilities``: every client checks it)."""

SCOPES: dict[str, Scope | str] = {
    "createTask": Scope.data,
    "streamTask": Scope.data,
    "cancelTask": Scope.data,
    "getSession": Scope.data,
    "deleteSession": Scope.data,
    "getCapabilities": ANY,
    "listReplicaSets": Scope.control,
    "getPoolHealth": Scope.control,
    "drainPool": Scope.control,
    "reloadPool": Scope.control,
    "createArtifact": Scope.artifacts,
    "listArtifacts": Scope.artifacts,
    "getArtifact": Scope.artifacts,
    "getArtifactLineage": Scope.artifacts,
    "createCatalogModel": Scope.control,
    "listCatalogModels": Scope.control,
    "getCatalogModel": Scope.control,
    "deleteCatalogModel": Scope.control,
    "verifyCatalogModel": Scope.control,
    "setCatalogModelState": Scope.control,
    "registerReplicas": Scope.replicas,
    "heartbeatReplica": Scope.replicas,
    "removeReplica": Scope.replicas,
    "fetchUrl": Scope.data,
    "getMetrics": Scope.control,
}
"""The scope each operation needs (``admin`` has them all)."""

FRONT_DOOR: dict[tuple[str, str], Scope | str] = {
    ("GET", "/v1/models"): Scope.data,
    ("POST", "/v1/completions"): Scope.data,
    ("POST", "/v1/chat/completions"): Scope.data,
    ("POST", "/v1/embeddings"): Scope.data,
}
"""The OpenAI-compatible front door (``contracts/openapi/openai.yaml``): the ``data`` scope, like
``POST /v1/tasks``; its refusals (401/403/429) are answered in OpenAI's error shape."""

UNLISTED: dict[tuple[str, str], Scope | str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    **FRONT_DOOR,
}
"""Routes outside the API's route table and what they need."""

AUDITED: dict[str, str] = {
    "drainPool": "pool.drain",
    "reloadPool": "pool.reload",
    "createCatalogModel": "catalog.create",
    "deleteCatalogModel": "catalog.delete",
    "verifyCatalogModel": "catalog.verify",
    "setCatalogModelState": "catalog.state",
    "registerReplicas": "replica.register",
    "removeReplica": "replica.remove",
}
"""Admin actions: each attempt (allowed or not) leaves an audit record."""


@dataclass(frozen=True, slots=True)
class _Op:
    """What the middleware needs of one matched route: looked up once per route, not per request."""

    template: str
    """The route's path template (aiohttp's ``resource.canonical``)."""
    method: str
    operation: str | None
    scope: Scope | str
    audited: str | None
    """The audit action (:data:`AUDITED`), for an admin action."""


@dataclass(slots=True)
class _Admitted:
    identity: str
    pool: str
    priority: str
    context: Context | None
    predicted_start_ms: int | None


class Security:
    """The security and telemetry state of one orchestratord app."""

    def __init__(
        self,
        *,
        auth: AuthConfig,
        policy: PolicyConfig,
        telemetry: TelemetryConfig,
        data_dir: Path | None,
        routes: Sequence[Route],
        max_tracked_tasks: int = 100_000,
    ) -> None:
        self.authenticator = Authenticator(auth)
        self.policy: PolicyHook = build_policy(policy)
        self.redactor = policy.redaction.redactor()
        self.metrics = Metrics(version="0.1.0", api_version=API_VERSION) if telemetry.metrics else None
        self.tracing = Tracing(telemetry.tracing)
        self.audit = AuditLog(data_dir / "audit.jsonl" if data_dir is not None else None, redactor=self.redactor)
        limits = policy.fetch
        self.fetcher = SafeFetcher(
            self.policy,
            purpose="fetch",
            limits=FetchLimits(
                max_bytes=limits.max_bytes,
                timeout_s=limits.timeout_s,
                connect_timeout_s=limits.connect_timeout_s,
                read_timeout_s=limits.read_timeout_s,
                max_redirects=limits.max_redirects,
            ),
            cache=FetchCache(max_entries=limits.cache_entries, max_bytes=limits.cache_bytes)
            if limits.cache_entries
            else None,
            redactor=self.redactor,
        )
        self.resolver = Resolver()
        # Keyed as aiohttp names a matched resource (resource.canonical): the template, no regex.
        self.operations: dict[tuple[str, str], str] = {
            (r.method, path_template(r.path)): r.operation_id for r in routes
        }
        self._tasks: OrderedDict[str, _Admitted] = OrderedDict()
        self._max_tasks = max_tracked_tasks
        self._ops: dict[AbstractRoute, _Op] = {}
        # Both are fixed by the config the app started with; read once, not on every request.
        self._auth_enabled = self.authenticator.enabled
        self._rate_limited = self.authenticator.rate_limiter.active

    # -- per request -----------------------------------------------------------------------------

    def scope(self, method: str, template: str) -> Scope | str:
        operation = self.operations.get((method, template))
        if operation is None:
            return UNLISTED.get((method, template), Scope.admin)
        return SCOPES.get(operation, Scope.admin)

    def op(self, route: AbstractRoute, method: str) -> _Op | None:
        """The middleware's view of ``route`` matched for ``method``; None for aiohttp's own
        (unmatched: 404/405) routes, which have no resource."""
        op = self._ops.get(route)
        if op is not None and op.method == method:
            return op
        resource = route.resource
        if resource is None:
            return None
        template = resource.canonical
        operation = self.operations.get((method, template))
        op = _Op(template, method, operation, self.scope(method, template), AUDITED.get(operation or ""))
        if route.method == method:  # a route for any method ("*") is looked up each time
            self._ops[route] = op
        return op

    async def rate_limit(self, identity: Identity, request: web.Request, operation: str | None) -> RateState:
        limiter = self.authenticator.rate_limiter
        tokens = 0
        if operation == "createTask" and limiter.limits(identity.label).tokens_per_minute is not None:
            tokens = _max_tokens(await request.read())
        return limiter.acquire(identity.label, tokens)

    async def vet_endpoints(self, request: web.Request, identity: Identity | None) -> None:
        """Ask the policy about every engine endpoint a registration names (purpose ``engines``)."""
        try:
            registration = ReplicaRegistration.model_validate_json(await request.read() or b"{}")
        except ValidationError:
            return  # malformed: the handler answers 400 and names the field
        # Endpoints the registry refuses anyway (not http/https: 400) are left to it.
        endpoints = [
            r.endpoint for r in registration.replicas if r.endpoint.lower().startswith(("http://", "https://"))
        ]
        who = identity.label if identity is not None else None
        for endpoint in endpoints:
            try:
                vetted = await vet_outbound(
                    self.policy, endpoint, purpose="engines", resolver=self.resolver, identity=who,
                    redactor=self.redactor,
                )  # fmt: skip
            except PolicyDenied:
                if self.metrics is not None:
                    self.metrics.policy_decided("outbound", False)
                raise
            except FetchFailed:
                raise OrchError(
                    ErrorCode.INVALID_PARAMS, f"engine endpoint {self.redactor.redact_url(endpoint)} does not resolve"
                ) from None
            if self.metrics is not None:
                for decision in vetted.decisions:
                    self.metrics.policy_decided("outbound", decision.allow)

    def admitted(self, task_id: str, entry: _Admitted) -> None:
        self._tasks[task_id] = entry
        while len(self._tasks) > self._max_tasks:
            self._tasks.popitem(last=False)

    def admission_of(self, task_id: str) -> _Admitted | None:
        return self._tasks.get(task_id)

    # -- task records (called from PolicyArtifactStore) ------------------------------------------

    def observe_record(self, content: Mapping[str, Any], wall_now_ns: int) -> dict[str, Any]:
        """Metrics and spans from a finished task's record; returns the content to store (with identity)."""
        out = dict(content)
        task_id = str(content.get("task_id", ""))
        admitted = self._tasks.pop(task_id, None)
        if admitted is not None:
            out["identity"] = admitted.identity
        metrics = content.get("metrics") or {}
        pool = str(content.get("pool") or (admitted.pool if admitted else "unknown"))
        priority = admitted.priority if admitted else "unknown"
        waited = metrics.get("waited_ms")
        first = metrics.get("first_token_ms")
        total = metrics.get("total_ms")
        state = str(content.get("state", "unknown"))
        if self.metrics is not None:
            if waited is not None:
                self.metrics.started(pool, priority, float(waited) / 1000)
            decode = None
            if total is not None and waited is not None and first is not None:
                decode = max(0.0, (float(total) - float(waited) - float(first)) / 1000)
            self.metrics.finished(
                pool,
                state,
                tokens_out=int(metrics.get("tokens_out") or 0),
                ttft_s=float(first) / 1000 if first is not None else None,
                decode_s=decode,
            )
        if admitted is not None and admitted.context is not None and self.tracing.enabled:
            self._task_spans(admitted.context, task_id, pool, waited, first, total, state, wall_now_ns)
        return out

    def _task_spans(
        self, parent: Context, task_id: str, pool: str, waited: Any, first: Any, total: Any, state: str, now_ns: int
    ) -> None:
        # The record arrives when the task has ended: its spans are laid out on the recorded timings.
        if total is None:
            return
        admitted_ns = now_ns - int(float(total) * 1e6)
        attrs = {"llorch.task_id": task_id, "llorch.pool": pool}
        tracer = self.tracing.tracer
        if waited is None:
            span = tracer.start_span("queue_wait", context=parent, start_time=admitted_ns, attributes=attrs)
            span.set_attribute("llorch.state", state)
            span.end(end_time=now_ns)
            return
        started_ns = admitted_ns + int(float(waited) * 1e6)
        queue = tracer.start_span("queue_wait", context=parent, start_time=admitted_ns, attributes=attrs)
        queue.end(end_time=started_ns)
        placement = tracer.start_span("placement", context=parent, start_time=started_ns, attributes=attrs)
        placement.end(end_time=started_ns)
        stream = tracer.start_span("engine_stream", context=parent, start_time=started_ns, attributes=attrs)
        if first is not None:
            stream.add_event("first_token", timestamp=started_ns + int(float(first) * 1e6))
        stream.set_attribute("llorch.state", state)
        stream.end(end_time=now_ns)


SECURITY = web.AppKey("security", Security)
IDENTITY = web.RequestKey("identity", Identity)
SPAN_CONTEXT = web.RequestKey("span_context", Context)


def _max_tokens(body: bytes) -> int:
    try:
        value = json.loads(body or b"{}").get("max_tokens", 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value > 0 else 0


def _peercert(request: web.Request) -> dict[str, Any] | None:
    transport = request.transport
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    return cert if isinstance(cert, dict) and cert else None


def _refusal(exc: OrchError, cid: str, method: str, template: str) -> web.Response:
    """Our envelope, or OpenAI's error shape on the front door's routes (what its clients parse)."""
    if (method, template) in FRONT_DOOR:
        return answer_error(exc, cid)
    return error_response(exc, cid)


def secure(request: web.Request, handler: Handler, cid: str) -> Awaitable[web.StreamResponse]:
    """What :func:`security_middleware` does, for the envelope middleware to await directly (one
    middleware layer per request instead of two, and no coroutine of its own: it answers the
    awaitable that serves the request); ``cid`` is the request's correlation id."""
    sec = request.app[SECURITY]
    info = request.match_info
    if info.http_exception is not None:
        return handler(request)  # 404/405: nothing to protect, the envelope middleware answers
    op = sec.op(info.route, request.method)
    if op is None:
        return handler(request)
    if not sec.tracing.enabled:
        return _serve(sec, request, handler, op, cid, None)
    return _traced(sec, request, handler, op, cid)


async def _traced(sec: Security, request: web.Request, handler: Handler, op: _Op, cid: str) -> web.StreamResponse:
    method, template = op.method, op.template
    with sec.tracing.span(
        f"{method} {template}",
        context=Tracing.extract(request.headers),
        correlation_id=cid,
        kind=trace.SpanKind.SERVER,
        attributes={"http.route": template, "http.request.method": method},
    ) as span:
        request[SPAN_CONTEXT] = context_of(span)
        response = await _serve(sec, request, handler, op, cid, span)
        span.set_attribute("http.response.status_code", response.status)
        return response


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:func:`secure` as a middleware of its own (after one that sets the request's :data:`CID`)."""
    return await secure(request, handler, request[CID])


async def _serve(
    sec: Security, request: web.Request, handler: Handler, op: _Op, cid: str, span: trace.Span | None
) -> web.StreamResponse:
    operation, scope, template, method = op.operation, op.scope, op.template, op.method
    started = time.perf_counter()
    identity: Identity | None = None
    try:
        rate: RateState | None = None
        if scope != PUBLIC:
            if sec._auth_enabled:
                peercert = _peercert(request) if sec.authenticator.certificates is not None else None
                identity = await sec.authenticator.authenticate(request.headers.get("Authorization"), peercert)
            else:
                identity = LOCAL_DEV  # what authenticate() answers without an auth method
            if scope != ANY:
                assert isinstance(scope, Scope)
                sec.authenticator.authorize(identity, scope)
            if sec._rate_limited:  # else every identity is unlimited: no state, no headers
                rate = await sec.rate_limit(identity, request, operation)
            request[IDENTITY] = identity
        if operation == "registerReplicas":
            await sec.vet_endpoints(request, identity)
        response = await handler(request)
        if rate is not None and rate.limit is not None and not response.prepared:
            response.headers.update(rate.headers())
        if operation == "createTask" and response.status == 202 and identity is not None:
            _remember_admission(sec, request, identity, span, cid)
    except Unauthenticated as exc:
        if sec.metrics is not None:
            sec.metrics.auth_failed(exc.method, exc.reason)
        log.info(
            "refused %s %s: %s", method, template, exc.reason,
            extra={"correlation_id": cid, "narration": f"unauthenticated request ({exc.reason})"},
        )  # fmt: skip
        response = _refusal(exc, cid, method, template)
        response.headers["WWW-Authenticate"] = exc.www_authenticate
    except RateLimited as exc:
        if sec.metrics is not None:
            sec.metrics.rate_limited.labels(kind=exc.kind).inc()
            sec.metrics.rejected("unknown", ErrorCode.RATE_LIMITED.value, exc.policy_label)
        response = _refusal(exc, cid, method, template)
        response.headers.update({"X-RateLimit-Limit": str(exc.limit), "X-RateLimit-Remaining": "0"})
    except OrchError as exc:
        response = _refusal(exc, cid, method, template)
    except BaseException as exc:  # counted, then the envelope middleware answers (or the task is cancelled)
        if sec.metrics is not None:
            status = exc.status if isinstance(exc, web.HTTPException) else 500
            sec.metrics.http(template, method, status, time.perf_counter() - started)
        raise
    status = response.status
    if sec.metrics is not None:
        sec.metrics.http(template, method, status, time.perf_counter() - started)
        if operation == "createTask" and status >= 400:
            _count_rejection(sec.metrics, request, response)
    if op.audited is not None:
        sec.audit.record(
            AuditRecord(
                identity.label if identity is not None else "unauthenticated",
                op.audited,
                request.path,
                "ok" if status < 400 else f"refused ({status})",
                cid,
            )
        )
    return response


def _remember_admission(
    sec: Security, request: web.Request, identity: Identity, span: trace.Span | None, cid: str
) -> None:
    admitted = request.get(ADMITTED)
    if admitted is None:
        return
    task_id, pool = admitted.task_id, admitted.pool
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "admitted task %s on pool %s for %s", task_id, pool, identity.label,
            extra={"task_id": task_id, "pool": pool, "identity": identity.label, "correlation_id": cid,
                   "narration": f"{identity.label} queued a task on pool '{pool}'"},
        )  # fmt: skip
    context = context_of(span) if span is not None else None
    sec.admitted(task_id, _Admitted(identity.label, pool, admitted.priority, context, admitted.predicted_start_ms))
    if sec.metrics is not None:
        sec.metrics.enqueued(pool, admitted.priority)


def _count_rejection(metrics: Metrics, request: web.Request, response: web.StreamResponse) -> None:
    if not isinstance(response, web.Response) or response.body is None:
        return
    try:
        body = json.loads(bytes(response.body))  # type: ignore[arg-type]
        code = str(body["code"])
    except (ValueError, KeyError, TypeError):
        return
    if code == ErrorCode.RATE_LIMITED.value:
        return  # counted where it was raised
    metrics.rejected("unknown", code, body.get("policy_label"))


class PolicyArtifactStore(ArtifactStore):
    """The artifact store, with every write through the policy hook (redacted, or refused)."""

    security: Security | None = None

    async def create(self, request: ArtifactCreate, *, size_hint: int | None = None) -> tuple[ArtifactRef, bool]:
        sec = self.security
        if sec is None:
            return await super().create(request, size_hint=size_hint)
        content: Any = request.content
        is_record = request.kind.value == "trace" and "task-record" in request.tags
        if is_record and isinstance(content, dict):
            content = sec.observe_record(content, time.time_ns())
            transcript = content.get("transcript")
            if isinstance(transcript, str):  # the secrets its tokens split (the policy sees frames whole)
                content["transcript"] = redact_tokens(transcript, default_redactor().redact_pieces)
        text = json.dumps(content, ensure_ascii=False)
        decision = sec.policy.write(Write("artifact", text, kind=request.kind.value))
        if sec.metrics is not None:
            sec.metrics.policy_decided("write", decision.allow)
        if not decision.allow:
            log.info(
                "policy refused a %s artifact (%s)", request.kind.value, decision.rule,
                extra={"policy_rule": decision.rule, "policy_decision": "deny", "policy_kind": "write"},
            )  # fmt: skip
            raise PolicyDenied(decision.rule, decision.reason or "the policy refuses this artifact")
        if decision.redactions:
            try:
                content = json.loads(decision.text)
            except ValueError:
                content = default_redactor().redact_value(content)
        if content is not request.content:
            request = request.model_copy(update={"content": content})
        return await super().create(request, size_hint=size_hint)


def secure_document(document: dict[str, Any], routes: Sequence[Route]) -> dict[str, Any]:
    """The served OpenAPI document with the answers this middleware adds: ``401`` and ``429`` on
    every route that needs an identity, ``403`` on every route that needs a scope."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for route in routes:
        scope = SCOPES.get(route.operation_id, Scope.admin)
        if scope == PUBLIC:
            continue
        responses = document["paths"][path_template(route.path)][route.method.lower()]["responses"]
        added = ["401", "429"] if scope == ANY else ["401", "403", "429"]
        for status in added:
            responses.setdefault(status, {"description": status, "content": error})
    return document
