"""What the SDK raises.

::

    LlamaOrchError                      everything below; never raised itself
    ├── APIError                        the server answered an error envelope (HTTP or SSE ``error``)
    │   ├── InvalidRequestError         fix the request (400, 405, 413)
    │   │   ├── InvalidParamsError          INVALID_PARAMS
    │   │   ├── UnknownEngineError          UNKNOWN_ENGINE
    │   │   ├── UnknownModelError           UNKNOWN_MODEL
    │   │   ├── UnknownPoolError            UNKNOWN_POOL
    │   │   ├── CtxExceededError            CTX_EXCEEDED
    │   │   ├── MaxTokensExceededError      MAX_TOKENS_EXCEEDED
    │   │   ├── DeterminismUnsupportedError DETERMINISM_UNSUPPORTED
    │   │   ├── WorkloadUnsupportedError    WORKLOAD_UNSUPPORTED
    │   │   ├── MethodNotAllowedError       METHOD_NOT_ALLOWED
    │   │   └── PayloadTooLargeError        PAYLOAD_TOO_LARGE
    │   ├── NotFoundError                   NOT_FOUND (404)
    │   ├── RefusedError                policy says no (401, 402, 403, 410)
    │   │   ├── UnauthenticatedError        UNAUTHENTICATED (401: no or bad credentials)
    │   │   ├── ForbiddenError              FORBIDDEN (the identity lacks the route's scope)
    │   │   ├── PolicyDeniedError           POLICY_DENIED (a policy rule refused it)
    │   │   ├── BudgetExceededError         BUDGET_EXCEEDED
    │   │   ├── UntrustedArtifactError      UNTRUSTED_ARTIFACT
    │   │   └── ModelDeprecatedError        MODEL_DEPRECATED
    │   ├── StateConflictError          the target's state forbids it (409)
    │   │   ├── TaskExistsError             TASK_EXISTS
    │   │   ├── ConflictError               CONFLICT
    │   │   └── TaskCancelledError          CANCELLED
    │   ├── BackpressureError           too busy now: retry later (429)
    │   │   ├── AdmissionRejectError        ADMISSION_REJECT
    │   │   ├── QueueFullDropLruError       QUEUE_FULL_DROP_LRU
    │   │   ├── RateLimitedError            RATE_LIMITED (the identity's requests/tokens per minute)
    │   │   └── DeadlineUnmetError          DEADLINE_UNMET (429; also an UnavailableError, as before)
    │   ├── UnavailableError            the pool cannot take it now (503)
    │   │   ├── DeadlineUnmetError          (see above)
    │   │   ├── PoolUnreadyError            POOL_UNREADY
    │   │   ├── PoolUnavailableError        POOL_UNAVAILABLE
    │   │   ├── PoolDrainingError           POOL_DRAINING
    │   │   └── OrchestratorRestartedError  ORCHESTRATOR_RESTARTED (a stream's task was cut by a restart)
    │   └── ServerError                 the backend failed
    │       ├── InternalServerError         INTERNAL (500)
    │       ├── ReloadFailedError           RELOAD_FAILED (422)
    │       ├── FetchFailedError            FETCH_FAILED (502: the fetch tool's upstream failed)
    │       └── EngineFailureError      an engine failed while serving
    │           ├── EngineError             ENGINE_ERROR (502)
    │           ├── WorkerResetError        WORKER_RESET
    │           └── DecodeTimeoutError      DECODE_TIMEOUT
    ├── TransportError                  no usable answer from the server
    │   ├── ServerUnreachableError          could not connect
    │   ├── RequestTimeoutError             connected, but no answer in time
    │   └── StreamInterruptedError          an SSE stream kept dropping before its terminal event
    ├── ProtocolError                   the server answered something that is not this API
    └── IncompatibleServerError         the server's API version is outside the supported range

Every :class:`APIError` carries the :class:`~llama_orch_api.ErrorEnvelope`, the HTTP ``status``
(None for an SSE ``error`` event), ``retriable``, ``retry_after_ms`` and the ``correlation_id``.
An error code this SDK does not know (a newer server) is raised as the group of its HTTP status.

Misuse (a malformed version range, a bad argument) raises ``ValueError``/``TypeError`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from llama_orch_api import ErrorCode, ErrorEnvelope


class LlamaOrchError(Exception):
    """Base of everything the SDK raises for an operational failure."""


class APIError(LlamaOrchError):
    """The server answered with an error envelope: an HTTP 4xx/5xx, or a stream's ``error`` event."""

    code_value: ErrorCode | None = None
    """The code a subclass stands for (None on group classes)."""

    def __init__(
        self,
        envelope: ErrorEnvelope,
        *,
        status: int | None = None,
        correlation_id: str | None = None,
        retry_after_ms: int | None = None,
        task_id: str | None = None,
    ) -> None:
        self.envelope = envelope
        self.status = status
        """HTTP status; None when the error arrived as an SSE ``error`` event."""
        self.correlation_id = envelope.correlation_id or correlation_id
        self.retry_after_ms = envelope.retry_after_ms if envelope.retry_after_ms is not None else retry_after_ms
        """How long the server asked us to wait (envelope, ``X-Backoff-Ms`` or ``Retry-After``)."""
        self.task_id = task_id
        super().__init__(str(self))

    @property
    def code(self) -> str:
        """The error code (an :class:`~llama_orch_api.ErrorCode` value, or a newer server's code)."""
        return str(self.envelope.code)

    @property
    def message(self) -> str:
        return self.envelope.message

    @property
    def retriable(self) -> bool:
        return self.envelope.retriable

    @property
    def policy_label(self) -> str | None:
        return self.envelope.policy_label

    @property
    def details(self) -> dict[str, object] | None:
        return self.envelope.details

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "stream error"
        text = f"{self.code} ({where}): {self.message}"
        if self.correlation_id:
            text += f" [correlation id {self.correlation_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, status={self.status}, retriable={self.retriable})"


class InvalidRequestError(APIError):
    """The request cannot succeed as sent; fix it (400, 405, 413)."""


class InvalidParamsError(InvalidRequestError):
    code_value = ErrorCode.INVALID_PARAMS


class UnknownEngineError(InvalidRequestError):
    code_value = ErrorCode.UNKNOWN_ENGINE


class UnknownModelError(InvalidRequestError):
    code_value = ErrorCode.UNKNOWN_MODEL


class UnknownPoolError(InvalidRequestError):
    code_value = ErrorCode.UNKNOWN_POOL


class CtxExceededError(InvalidRequestError):
    code_value = ErrorCode.CTX_EXCEEDED


class MaxTokensExceededError(InvalidRequestError):
    code_value = ErrorCode.MAX_TOKENS_EXCEEDED


class DeterminismUnsupportedError(InvalidRequestError):
    code_value = ErrorCode.DETERMINISM_UNSUPPORTED


class WorkloadUnsupportedError(InvalidRequestError):
    code_value = ErrorCode.WORKLOAD_UNSUPPORTED


class MethodNotAllowedError(InvalidRequestError):
    code_value = ErrorCode.METHOD_NOT_ALLOWED


class PayloadTooLargeError(InvalidRequestError):
    code_value = ErrorCode.PAYLOAD_TOO_LARGE


class NotFoundError(APIError):
    """No such task, session, pool, catalog entry, artifact or route (404)."""

    code_value = ErrorCode.NOT_FOUND


class RefusedError(APIError):
    """A policy refuses it: credentials, scope, policy, budget, trust, retirement (401, 402, 403, 410)."""


class UnauthenticatedError(RefusedError):
    """No credentials, or credentials that do not verify (401); pass ``token=`` or set ``LLORCH_TOKEN``."""

    code_value = ErrorCode.UNAUTHENTICATED


class ForbiddenError(RefusedError):
    """The identity is known but lacks the scope the route needs (403)."""

    code_value = ErrorCode.FORBIDDEN


class PolicyDeniedError(RefusedError):
    """A policy rule refused an outbound request or a write; ``policy_label`` names the rule (403)."""

    code_value = ErrorCode.POLICY_DENIED


class BudgetExceededError(RefusedError):
    code_value = ErrorCode.BUDGET_EXCEEDED


class UntrustedArtifactError(RefusedError):
    code_value = ErrorCode.UNTRUSTED_ARTIFACT


class ModelDeprecatedError(RefusedError):
    code_value = ErrorCode.MODEL_DEPRECATED


class StateConflictError(APIError):
    """The target's current state forbids the operation (409)."""


class TaskExistsError(StateConflictError):
    code_value = ErrorCode.TASK_EXISTS


class ConflictError(StateConflictError):
    code_value = ErrorCode.CONFLICT


class TaskCancelledError(StateConflictError):
    """The task was cancelled (its stream ended with ``CANCELLED``)."""

    code_value = ErrorCode.CANCELLED


class BackpressureError(APIError):
    """The backend is at capacity; the envelope says when to retry (429)."""


class AdmissionRejectError(BackpressureError):
    code_value = ErrorCode.ADMISSION_REJECT


class QueueFullDropLruError(BackpressureError):
    """The task was evicted from a full ``drop-lru`` queue by a newer one."""

    code_value = ErrorCode.QUEUE_FULL_DROP_LRU


class RateLimitedError(BackpressureError):
    """The identity's requests or tokens per minute are spent; retry after ``retry_after_ms``."""

    code_value = ErrorCode.RATE_LIMITED


class UnavailableError(APIError):
    """The pool cannot take the task now (503)."""


class DeadlineUnmetError(BackpressureError, UnavailableError):
    """The predicted start misses ``deadline_ms`` (429, with advice: the queue is too long now).

    Also an :class:`UnavailableError`, its group while the server answered it 503.
    """

    code_value = ErrorCode.DEADLINE_UNMET


class PoolUnreadyError(UnavailableError):
    code_value = ErrorCode.POOL_UNREADY


class PoolUnavailableError(UnavailableError):
    code_value = ErrorCode.POOL_UNAVAILABLE


class PoolDrainingError(UnavailableError):
    code_value = ErrorCode.POOL_DRAINING


class OrchestratorRestartedError(UnavailableError):
    """The task was running when orchestratord stopped or crashed, after it had delivered tokens
    (its earlier events stay readable); submitting it again is safe."""

    code_value = ErrorCode.ORCHESTRATOR_RESTARTED


class ServerError(APIError):
    """The backend failed (500, 502, 422 on reload, engine failures in a stream)."""


class InternalServerError(ServerError):
    code_value = ErrorCode.INTERNAL


class ReloadFailedError(ServerError):
    """A pool reload failed and was rolled back; the pool still serves its old model."""

    code_value = ErrorCode.RELOAD_FAILED


class FetchFailedError(ServerError):
    """The fetch tool's upstream failed: connect, timeout, body too large, too many redirects (502)."""

    code_value = ErrorCode.FETCH_FAILED


class EngineFailureError(ServerError):
    """An engine failed while serving a task."""


class EngineError(EngineFailureError):
    code_value = ErrorCode.ENGINE_ERROR


class WorkerResetError(EngineFailureError):
    code_value = ErrorCode.WORKER_RESET


class DecodeTimeoutError(EngineFailureError):
    code_value = ErrorCode.DECODE_TIMEOUT


class TransportError(LlamaOrchError):
    """No usable answer: the connection failed, timed out, or a stream kept dropping."""

    def __init__(self, message: str, *, url: str | None = None, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.correlation_id = correlation_id


class ServerUnreachableError(TransportError):
    """Could not connect to the server (refused, unresolvable, unreachable)."""


class RequestTimeoutError(TransportError):
    """Connected, but the answer did not come in time."""


class StreamInterruptedError(TransportError):
    """A task's event stream dropped more often than allowed before its terminal event."""

    def __init__(self, message: str, *, task_id: str, last_event_id: int | None, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.task_id = task_id
        self.last_event_id = last_event_id


class ProtocolError(LlamaOrchError):
    """The server's answer does not follow the API (not JSON, wrong shape): probably not orchestratord."""

    def __init__(self, message: str, *, status: int | None = None, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.correlation_id = correlation_id


class IncompatibleServerError(LlamaOrchError):
    """The server speaks an API version outside the range this client supports (OC-CLI-2202)."""

    def __init__(self, server_version: str, supported: str) -> None:
        super().__init__(
            f"server API version {server_version} is outside the range this client supports ({supported}); "
            "upgrade the client or the server so that they match"
        )
        self.server_version = server_version
        self.supported = supported


def _by_code() -> dict[ErrorCode, type[APIError]]:
    table: dict[ErrorCode, type[APIError]] = {}
    pending: list[type[APIError]] = [APIError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.code_value is not None and "code_value" in vars(cls):
            table[cls.code_value] = cls
    return table


ERROR_CLASSES: Mapping[ErrorCode, type[APIError]] = _by_code()
"""The exception class raised for each :class:`~llama_orch_api.ErrorCode`."""

_STATUS_GROUPS: Mapping[int, type[APIError]] = {
    400: InvalidRequestError,
    401: RefusedError,
    402: RefusedError,
    403: RefusedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: StateConflictError,
    410: RefusedError,
    413: InvalidRequestError,
    429: BackpressureError,
    503: UnavailableError,
}


def error_class(code: str, status: int | None) -> type[APIError]:
    """The class for ``code``; for a code this SDK does not know, the group of ``status``."""
    try:
        return ERROR_CLASSES[ErrorCode(code)]
    except ValueError:
        pass
    if status is None:
        return APIError
    if status in _STATUS_GROUPS:
        return _STATUS_GROUPS[status]
    return ServerError if status >= 500 else APIError


__all__ = [
    "ERROR_CLASSES",
    "APIError",
    "AdmissionRejectError",
    "BackpressureError",
    "BudgetExceededError",
    "ConflictError",
    "CtxExceededError",
    "DeadlineUnmetError",
    "DecodeTimeoutError",
    "DeterminismUnsupportedError",
    "EngineError",
    "EngineFailureError",
    "FetchFailedError",
    "ForbiddenError",
    "IncompatibleServerError",
    "InternalServerError",
    "InvalidParamsError",
    "InvalidRequestError",
    "LlamaOrchError",
    "MaxTokensExceededError",
    "MethodNotAllowedError",
    "ModelDeprecatedError",
    "NotFoundError",
    "OrchestratorRestartedError",
    "PayloadTooLargeError",
    "PolicyDeniedError",
    "PoolDrainingError",
    "PoolUnavailableError",
    "PoolUnreadyError",
    "ProtocolError",
    "QueueFullDropLruError",
    "RateLimitedError",
    "RefusedError",
    "ReloadFailedError",
    "RequestTimeoutError",
    "ServerError",
    "ServerUnreachableError",
    "StateConflictError",
    "StreamInterruptedError",
    "TaskCancelledError",
    "TaskExistsError",
    "TransportError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownEngineError",
    "UnknownModelError",
    "UnknownPoolError",
    "UntrustedArtifactError",
    "WorkerResetError",
    "WorkloadUnsupportedError",
    "error_class",
]
