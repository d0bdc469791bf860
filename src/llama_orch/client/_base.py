"""What :class:`~llama_orch.client.Client` and :class:`~llama_orch.client.AsyncClient` share.

Everything that does not wait lives here: configuration, the description of every operation
(method, path, body, how to read the answer), headers and correlation ids, turning answers and
transport failures into the SDK's errors, decoding stream events, and the API version check. The
twins only send, sleep and wait, each in its own way.
"""

from __future__ import annotations

import contextvars
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from llama_orch._wire import ServerSentEvent, retry_after_ms
from llama_orch.client._errors import (
    APIError,
    IncompatibleServerError,
    LlamaOrchError,
    ProtocolError,
    RequestTimeoutError,
    ServerUnreachableError,
    TransportError,
    error_class,
)
from llama_orch.client._limiter import AdaptiveLimiter
from llama_orch.client._retry import RetryPolicy
from llama_orch.client._version import SUPPORTED_API_VERSIONS, VersionRange
from llama_orch_api import (
    AdmissionResponse,
    Artifact,
    ArtifactCreate,
    ArtifactKind,
    ArtifactLineage,
    ArtifactList,
    ArtifactRef,
    Capabilities,
    CatalogModel,
    CatalogModelCreate,
    CatalogModelList,
    DrainRequest,
    EndEvent,
    ErrorEnvelope,
    MetricsEvent,
    ModelState,
    ModelStateRequest,
    PoolHealth,
    PoolOperation,
    ReloadRequest,
    ReplicaSetList,
    SessionInfo,
    StartedEvent,
    TaskRequest,
    TokenEvent,
    VerifyResult,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
USER_AGENT = "llama-orch-client/0.1"
# A synchronous pool operation may run for its whole deadline; the HTTP timeout adds this margin.
_OPERATION_MARGIN_S = 30.0

T = TypeVar("T")


class DefaultType:
    """The type of :data:`DEFAULT`."""

    _instance: DefaultType | None = None

    def __new__(cls) -> DefaultType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __bool__(self) -> bool:
        return False


DEFAULT = DefaultType()
"""Per-call argument meaning "use the client's default" (None means "none", e.g. no timeout)."""


@dataclass(frozen=True)
class ResponseInfo:
    """About the last response received in this thread or asyncio task (see :func:`last_response`)."""

    method: str
    url: str
    status: int
    correlation_id: str | None
    headers: Mapping[str, str]


_LAST_RESPONSE: contextvars.ContextVar[ResponseInfo | None] = contextvars.ContextVar(
    "llama_orch_last_response", default=None
)


def last_response() -> ResponseInfo | None:
    """The last response a client received in the current thread or asyncio task.

    The way to read the ``X-Correlation-Id`` (and headers such as ``X-Budget-Tokens-Remaining``)
    of a call that returns a plain model::

        caps = client.capabilities()
        print(last_response().correlation_id)
    """
    return _LAST_RESPONSE.get()


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One event of a task's stream: its name, its id (1, 2, 3…) and its payload model."""

    event: str
    id: int | None
    data: StartedEvent | TokenEvent | MetricsEvent | EndEvent | ErrorEnvelope

    @property
    def terminal(self) -> bool:
        return self.event in ("end", "error")

    def to_json(self) -> str:
        """``{"event": …, "id": …, "data": {…}}`` on one line: the CLI's ``--json`` output."""
        data = self.data.model_dump(mode="json")
        return json.dumps({"event": self.event, "id": self.id, "data": data}, separators=(",", ":"))


_EVENT_MODELS: dict[str, type[StartedEvent | TokenEvent | MetricsEvent | EndEvent | ErrorEnvelope]] = {
    "started": StartedEvent,
    "token": TokenEvent,
    "metrics": MetricsEvent,
    "end": EndEvent,
    "error": ErrorEnvelope,
}


@dataclass
class TaskResult:
    """What a task produced when it ran to its ``end`` event."""

    task_id: str
    text: str
    end: EndEvent
    started: StartedEvent | None
    correlation_id: str | None


@dataclass
class Call(Generic[T]):
    """One API operation, ready to send: the shared description both twins execute."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: bytes | None = None
    params: Sequence[tuple[str, str]] = ()
    idempotent: bool = True
    """Whether sending it twice is harmless, so that a dropped request may be retried."""
    min_timeout_s: float | None = None
    """A synchronous operation's own duration; the HTTP timeout is at least this."""
    extra_headers: dict[str, str] = field(default_factory=dict)


def _segment(value: str) -> str:
    """A path segment: percent-encoded, never ``.``/``..`` (which URL resolution would eat)."""
    if not value:
        raise ValueError("an id must not be empty")
    encoded = quote(value, safe=":@")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def _model_json(model: BaseModel) -> bytes:
    # exclude_unset: send what the caller set, so that server-side defaults stay the server's.
    return model.model_dump_json(exclude_unset=True).encode()


def _parser(model: type[T]) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        try:
            return model.model_validate_json(response.content)  # type: ignore[attr-defined,no-any-return]
        except ValidationError as exc:
            raise ProtocolError(
                f"{response.request.method} {response.request.url.path}: the answer is not a valid "
                f"{model.__name__} ({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})",
                status=response.status_code,
                correlation_id=response.headers.get("X-Correlation-Id"),
            ) from None

    return parse


def _no_content(response: httpx.Response) -> None:
    return None


def error_from_envelope(
    envelope: ErrorEnvelope,
    *,
    status: int | None,
    correlation_id: str | None = None,
    retry_after: int | None = None,
    task_id: str | None = None,
) -> APIError:
    cls = error_class(str(envelope.code), status)
    return cls(envelope, status=status, correlation_id=correlation_id, retry_after_ms=retry_after, task_id=task_id)


def _envelope_of(raw: bytes) -> ErrorEnvelope | None:
    try:
        return ErrorEnvelope.model_validate_json(raw)
    except ValidationError:
        pass
    # A newer server's code is not in our ErrorCode yet: keep the envelope all the same.
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not (isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str)):
        return None
    known = {k: v for k, v in body.items() if k in ErrorEnvelope.model_fields}
    known.setdefault("retriable", False)
    return ErrorEnvelope.model_construct(**known)


class _BaseClient:
    """Configuration and everything that does not wait; see the module docstring."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | DefaultType | None = DEFAULT,
        api_versions: str = SUPPORTED_API_VERSIONS,
        check_api_version: bool = True,
        correlation_id: str | Callable[[], str] | None = None,
        headers: Mapping[str, str] | None = None,
        stream_reconnects: int = 5,
        stream_read_timeout: float | None = 60.0,
    ) -> None:
        """
        ``base_url``: where orchestratord listens. ``token``: sent as ``Authorization: Bearer``.
        ``timeout``: seconds for each request (None: wait forever); pool drain/reload wait at least
        their deadline. ``retry``: the :class:`RetryPolicy` (``RetryPolicy(max_attempts=1)`` turns
        retries off). ``limiter``: the :class:`AdaptiveLimiter` for tasks in flight (None: no limit).
        ``api_versions``: the server API versions accepted, checked against ``/v1/capabilities``
        before the first call unless ``check_api_version`` is false (e.g. against a mock server).
        ``correlation_id``: the default ``X-Correlation-Id``, a string or a function making one per
        call; None generates one per call. ``stream_reconnects``: how many times in a row a dropped
        task stream is resumed (``Last-Event-ID``) before :class:`StreamInterruptedError`.
        """
        if stream_reconnects < 0:
            raise ValueError("stream_reconnects must not be negative")
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL with a host, not {base_url!r}")
        self.base_url = str(url).rstrip("/")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.limiter = AdaptiveLimiter() if isinstance(limiter, DefaultType) else limiter
        self.api_versions = VersionRange(api_versions)
        self.check_api_version = check_api_version
        self.server_api_version: str | None = None
        """The server's ``api_version``, once a capabilities answer was seen."""
        self._api_ok = False
        self.stream_reconnects = stream_reconnects
        self.stream_read_timeout = stream_read_timeout
        self._correlation_id = correlation_id
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    # -- requests ---------------------------------------------------------------------------------

    def _cid(self, correlation_id: str | DefaultType | None) -> str | None:
        if not isinstance(correlation_id, DefaultType):
            return correlation_id
        default = self._correlation_id
        if default is None:
            return f"llorch-{os.urandom(8).hex()}"
        return default() if callable(default) else default

    def _timeout(self, call: Call[Any], timeout: float | DefaultType | None) -> float | None:
        chosen = self.timeout if isinstance(timeout, DefaultType) else timeout
        if chosen is not None and call.min_timeout_s is not None:
            return max(chosen, call.min_timeout_s)
        return chosen

    def _request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        call: Call[Any],
        cid: str | None,
        timeout: float | httpx.Timeout | None,
    ) -> httpx.Request:
        headers = dict(self._headers)
        headers.update(call.extra_headers)
        if cid is not None:
            headers["X-Correlation-Id"] = cid
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return http.build_request(
            call.method,
            self.base_url + call.path,
            content=call.body,
            params=list(call.params) or None,
            headers=headers,
            timeout=httpx.Timeout(timeout),
        )

    def _stream_timeout(self, timeout: float | DefaultType | None) -> httpx.Timeout:
        connect = self.timeout if isinstance(timeout, DefaultType) else timeout
        return httpx.Timeout(connect, read=self.stream_read_timeout)

    @staticmethod
    def _record(response: httpx.Response) -> None:
        _LAST_RESPONSE.set(
            ResponseInfo(
                method=response.request.method,
                url=str(response.request.url),
                status=response.status_code,
                correlation_id=response.headers.get("X-Correlation-Id"),
                headers=dict(response.headers),
            )
        )

    def _error(self, response: httpx.Response, body: bytes, *, task_id: str | None = None) -> LlamaOrchError:
        """The error for a 4xx/5xx answer whose body has been read."""
        cid = response.headers.get("X-Correlation-Id")
        envelope = _envelope_of(body)
        if envelope is None:
            return ProtocolError(
                f"{response.request.method} {response.request.url.path} answered HTTP {response.status_code} "
                "without an error envelope: is this orchestratord?",
                status=response.status_code,
                correlation_id=cid,
            )
        return error_from_envelope(
            envelope,
            status=response.status_code,
            correlation_id=cid,
            retry_after=retry_after_ms(response.headers),
            task_id=task_id,
        )

    def _transport_error(self, exc: httpx.TransportError, request: httpx.Request) -> TransportError:
        cid = request.headers.get("X-Correlation-Id")
        where = f"{request.method} {request.url}"
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
            return ServerUnreachableError(
                f"cannot connect to {self.base_url} ({exc or type(exc).__name__})",
                url=str(request.url),
                correlation_id=cid,
            )
        if isinstance(exc, httpx.TimeoutException):
            return RequestTimeoutError(f"{where}: no answer in time", url=str(request.url), correlation_id=cid)
        return TransportError(f"{where}: {type(exc).__name__}: {exc}", url=str(request.url), correlation_id=cid)

    # -- API version (OC-CLI-2202) and the limiter's ceiling ----------------------------------------

    def _observe_capabilities(self, caps: Capabilities) -> None:
        """Check the server's API version; cap the limiter at what the pools can hold."""
        self.server_api_version = caps.api_version
        if self.limiter is not None and caps.pools:
            self._set_ceiling(sum(p.concurrency + p.queue_capacity for p in caps.pools))
        self._api_ok = self.api_versions.contains(caps.api_version)
        if not self._api_ok:
            raise IncompatibleServerError(caps.api_version, str(self.api_versions))

    def _set_ceiling(self, ceiling: int) -> None:
        raise NotImplementedError

    def _version_known(self) -> bool:
        return not self.check_api_version or self._api_ok

    # -- operations ---------------------------------------------------------------------------------

    @staticmethod
    def _task_request(request: TaskRequest | None, fields: Mapping[str, Any]) -> TaskRequest:
        if request is not None and fields:
            raise TypeError("pass either a TaskRequest or its fields as keyword arguments, not both")
        return request if request is not None else TaskRequest(**fields)

    def _op_create_task(self, request: TaskRequest) -> Call[AdmissionResponse]:
        # A task without a client-chosen id could be admitted twice by a blind resend.
        return Call("POST", "/v1/tasks", _parser(AdmissionResponse), _model_json(request),
                    idempotent=request.task_id is not None)  # fmt: skip

    def _op_cancel(self, task_id: str) -> Call[None]:
        return Call("POST", f"/v1/tasks/{_segment(task_id)}/cancel", _no_content)

    def _op_get_session(self, session_id: str) -> Call[SessionInfo]:
        return Call("GET", f"/v1/sessions/{_segment(session_id)}", _parser(SessionInfo))

    def _op_delete_session(self, session_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/sessions/{_segment(session_id)}", _no_content)

    def _op_capabilities(self) -> Call[Capabilities]:
        return Call("GET", "/v1/capabilities", _parser(Capabilities))

    def _op_replicasets(self) -> Call[ReplicaSetList]:
        return Call("GET", "/v1/replicasets", _parser(ReplicaSetList))

    def _op_pool_health(self, pool_id: str) -> Call[PoolHealth]:
        return Call("GET", f"/v1/pools/{_segment(pool_id)}/health", _parser(PoolHealth))

    def _op_drain_pool(self, pool_id: str, deadline_ms: int | None) -> Call[PoolOperation]:
        body = DrainRequest() if deadline_ms is None else DrainRequest(deadline_ms=deadline_ms)
        wait = (deadline_ms if deadline_ms is not None else DrainRequest().deadline_ms) / 1000
        return Call("POST", f"/v1/pools/{_segment(pool_id)}/drain", _parser(PoolOperation), _model_json(body),
                    idempotent=False, min_timeout_s=wait + _OPERATION_MARGIN_S)  # fmt: skip

    def _op_reload_pool(self, pool_id: str, model_ref: str, deadline_ms: int | None) -> Call[PoolOperation]:
        body = (
            ReloadRequest(model_ref=model_ref)
            if deadline_ms is None
            else ReloadRequest(model_ref=model_ref, deadline_ms=deadline_ms)
        )
        return Call("POST", f"/v1/pools/{_segment(pool_id)}/reload", _parser(PoolOperation), _model_json(body),
                    idempotent=False, min_timeout_s=body.deadline_ms / 1000 + _OPERATION_MARGIN_S)  # fmt: skip

    def _op_create_model(self, spec: CatalogModelCreate) -> Call[CatalogModel]:
        return Call("POST", "/v1/catalog/models", _parser(CatalogModel), _model_json(spec), idempotent=False)

    def _op_list_models(self, state: ModelState | str | None) -> Call[CatalogModelList]:
        params = [("state", ModelState(state).value)] if state is not None else []
        return Call("GET", "/v1/catalog/models", _parser(CatalogModelList), params=params)

    def _op_get_model(self, model_id: str) -> Call[CatalogModel]:
        return Call("GET", f"/v1/catalog/models/{_segment(model_id)}", _parser(CatalogModel))

    def _op_delete_model(self, model_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/catalog/models/{_segment(model_id)}", _no_content)

    def _op_verify_model(self, model_id: str) -> Call[VerifyResult]:
        return Call("POST", f"/v1/catalog/models/{_segment(model_id)}/verify", _parser(VerifyResult))

    def _op_set_model_state(self, model_id: str, request: ModelStateRequest) -> Call[CatalogModel]:
        return Call("POST", f"/v1/catalog/models/{_segment(model_id)}/state", _parser(CatalogModel),
                    _model_json(request))  # fmt: skip

    def _op_put_artifact(self, artifact: ArtifactCreate) -> Call[ArtifactRef]:
        # Content-addressed: posting the same artifact twice stores it once.
        return Call("POST", "/v1/artifacts", _parser(ArtifactRef), _model_json(artifact))

    def _op_get_artifact(self, artifact_id: str) -> Call[Artifact]:
        return Call("GET", f"/v1/artifacts/{_segment(artifact_id)}", _parser(Artifact))

    def _op_list_artifacts(
        self,
        tags: Sequence[str],
        kind: ArtifactKind | str | None,
        session_id: str | None,
        task_id: str | None,
        parent: str | None,
        limit: int | None,
        cursor: str | None,
    ) -> Call[ArtifactList]:
        if isinstance(tags, str):
            raise TypeError("tags must be a sequence of strings, not one string")
        params = [("tag", tag) for tag in tags]
        for name, value in (
            ("kind", ArtifactKind(kind).value if kind is not None else None),
            ("session_id", session_id),
            ("task_id", task_id),
            ("parent", parent),
            ("limit", str(limit) if limit is not None else None),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((name, value))
        return Call("GET", "/v1/artifacts", _parser(ArtifactList), params=params)

    def _op_artifact_lineage(self, artifact_id: str) -> Call[ArtifactLineage]:
        return Call("GET", f"/v1/artifacts/{_segment(artifact_id)}/lineage", _parser(ArtifactLineage))

    # -- streams ----------------------------------------------------------------------------------

    def _stream_call(self, task_id: str, last_event_id: int | None) -> Call[None]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        return Call("GET", f"/v1/tasks/{_segment(task_id)}/stream", _no_content, extra_headers=headers)

    @staticmethod
    def _decode(sse: ServerSentEvent) -> TaskEvent | None:
        """The typed event, or None for an event this SDK does not know (a newer server's)."""
        model = _EVENT_MODELS.get(sse.event)
        if model is None:
            return None
        try:
            data = model.model_validate_json(sse.data)
        except ValidationError as exc:
            raise ProtocolError(f"stream event {sse.event!r} (id {sse.id}) is not a valid {model.__name__}") from exc
        event_id = int(sse.id) if sse.id is not None and sse.id.isdigit() else None
        return TaskEvent(sse.event, event_id, data)

    def _reconnect_delay(self, failures: int, server_retry_ms: int | None) -> float:
        if server_retry_ms is not None:
            return min(self.retry.max_delay_s, server_retry_ms / 1000)
        base = self.retry.backoff_s(failures - 1)
        return min(self.retry.max_delay_s, base * (1.0 + self.retry.jitter * self.retry.rng.random()))


def stream_error(event: TaskEvent, task_id: str, correlation_id: str | None) -> APIError:
    """The exception for a stream's terminal ``error`` event."""
    assert isinstance(event.data, ErrorEnvelope)
    return error_from_envelope(event.data, status=None, correlation_id=correlation_id, task_id=task_id)


def artifact_create(
    artifact: ArtifactCreate | None,
    kind: ArtifactKind | str | None,
    content: Any,
    fields: Mapping[str, Any],
) -> ArtifactCreate:
    if artifact is not None:
        if kind is not None or content is not None or fields:
            raise TypeError("pass either an ArtifactCreate or its fields, not both")
        return artifact
    if kind is None:
        raise TypeError("kind is required")
    return ArtifactCreate(kind=ArtifactKind(kind), content=content, **fields)


__all__ = [
    "DEFAULT",
    "DEFAULT_BASE_URL",
    "Call",
    "DefaultType",
    "ResponseInfo",
    "TaskEvent",
    "TaskResult",
    "last_response",
]
