"""HTTP plumbing shared by the route modules: app keys, the route record, envelopes, bodies."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from llama_orch.artifacts import ArtifactStore
from llama_orch.catalog import Catalog
from llama_orch.core import validation_error
from llama_orch.errors import AdmissionError, OrchError
from llama_orch.policy import default_redactor
from llama_orch.scheduler import Admitted, Orchestrator
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import ErrorCode, ErrorEnvelope

ORCH = web.AppKey("orchestrator", Orchestrator)
ARTIFACTS = web.AppKey("artifacts", ArtifactStore)
CATALOG = web.AppKey("catalog", Catalog)
CONFIG = web.AppKey("config", OrchestratorConfig)
CID = web.RequestKey("correlation_id", str)
ADMITTED = web.RequestKey("admitted", Admitted)
"""Set by ``createTask`` on a 202: what was admitted (the security middleware records it)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
E = ErrorEnvelope
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Route:
    """One API operation: how it is served, and how ``/openapi.json`` describes it."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    request: type[BaseModel] | None = None
    responses: Mapping[str, type[BaseModel] | None] = field(default_factory=dict)
    query: tuple[str, ...] = ()
    """Names of the string query parameters the operation reads."""


def error_response(error: OrchError, correlation_id: str | None) -> web.Response:
    """The error envelope as a response; its message and details pass through the redactor (they
    may quote a path, a field name or a URL the client sent)."""
    headers: dict[str, str] = {}
    if error.retry_after_ms is not None and error.status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_ms / 1000)))
        headers["X-Backoff-Ms"] = str(error.retry_after_ms)
    envelope = error.envelope(correlation_id)
    redactor = default_redactor()
    envelope.message = redactor.clean(envelope.message)
    if envelope.details:
        envelope.details = redactor.redact_value(envelope.details)
    return web.Response(
        status=error.status,
        body=envelope.model_dump_json(exclude_none=True).encode(),
        content_type="application/json",
        headers=headers,
    )


def json_response(body: str | BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = body if isinstance(body, str) else body.model_dump_json()
    return web.Response(status=status, body=text.encode(), content_type="application/json", headers=headers)


async def read_body(request: web.Request, *, limit: int | None = None) -> bytes:
    """The request body, refusing (413) anything over ``limit`` (default ``server.max_body_bytes``).

    A declared Content-Length is checked before reading. The app's ``client_max_size`` is the
    largest limit of any route (artifacts may be bigger), so a body sent without one is counted
    against this route's own limit as it arrives.
    """
    if limit is None:
        limit = request.app[CONFIG].server.max_body_bytes
    length = request.content_length  # parsed from the header on each access
    if length is not None:
        if length > limit:
            raise _too_large(limit)
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> OrchError:
    return OrchError(ErrorCode.PAYLOAD_TOO_LARGE, f"request body too large (limit {limit} bytes)")


async def read_model(request: web.Request, model: type[M]) -> M:
    """Parse and validate the JSON body as ``model``; ``400 INVALID_PARAMS`` naming the bad fields."""
    body = await read_body(request)
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise validation_error(exc) from None


def not_found(what: str) -> OrchError:
    return OrchError(ErrorCode.NOT_FOUND, what)


__all__ = [
    "ARTIFACTS",
    "CATALOG",
    "CID",
    "CONFIG",
    "ORCH",
    "AdmissionError",
    "E",
    "Handler",
    "Route",
    "error_response",
    "json_response",
    "not_found",
    "read_body",
    "read_model",
]
