"""The llama-orch Python SDK: :class:`Client` and :class:`AsyncClient` for orchestratord.

Both speak the whole HTTP API (tasks and their SSE streams, sessions, capabilities, replica sets,
pools, the model catalog, artifacts) and return the wire models of ``llama_orch_api``. On top of
plain calls they add what a program running many agents needs:

* typed errors, one class per ``ErrorCode`` (see :mod:`llama_orch.client._errors` for the tree);
* retries of what the server says is retriable, honouring ``Retry-After``/``X-Backoff-Ms``;
* an adaptive concurrency limit (:class:`AdaptiveLimiter`) so that clients converge on the
  backend's capacity instead of storming it with 429s;
* streams that resume with ``Last-Event-ID`` when the connection drops;
* API version pinning against ``/v1/capabilities`` (:data:`SUPPORTED_API_VERSIONS`).

>>> from llama_orch.client import Client  # doctest: +SKIP
>>> with Client("http://127.0.0.1:8080") as client:  # doctest: +SKIP
...     with client.submit(prompt="hello", max_tokens=16, seed=7) as task:
...         for event in task.stream():
...             print(event.event, event.data)
"""

from __future__ import annotations

from llama_orch._wire import ServerSentEvent, SSEParser
from llama_orch.client._async import AsyncClient, AsyncTask
from llama_orch.client._base import (
    DEFAULT,
    DEFAULT_BASE_URL,
    DefaultType,
    ResponseInfo,
    TaskEvent,
    TaskResult,
    last_response,
)
from llama_orch.client._errors import (
    ERROR_CLASSES,
    AdmissionRejectError,
    APIError,
    BackpressureError,
    BudgetExceededError,
    ConflictError,
    CtxExceededError,
    DeadlineUnmetError,
    DecodeTimeoutError,
    DeterminismUnsupportedError,
    EngineError,
    EngineFailureError,
    FetchFailedError,
    ForbiddenError,
    IncompatibleServerError,
    InternalServerError,
    InvalidParamsError,
    InvalidRequestError,
    LlamaOrchError,
    MaxTokensExceededError,
    MethodNotAllowedError,
    ModelDeprecatedError,
    NotFoundError,
    OrchestratorRestartedError,
    PayloadTooLargeError,
    PolicyDeniedError,
    PoolDrainingError,
    PoolUnavailableError,
    PoolUnreadyError,
    ProtocolError,
    QueueFullDropLruError,
    RateLimitedError,
    RefusedError,
    ReloadFailedError,
    RequestTimeoutError,
    ServerError,
    ServerUnreachableError,
    StateConflictError,
    StreamInterruptedError,
    TaskCancelledError,
    TaskExistsError,
    TransportError,
    UnauthenticatedError,
    UnavailableError,
    UnknownEngineError,
    UnknownModelError,
    UnknownPoolError,
    UntrustedArtifactError,
    WorkerResetError,
    WorkloadUnsupportedError,
)
from llama_orch.client._limiter import AdaptiveLimiter, LimiterStats
from llama_orch.client._retry import RetryPolicy
from llama_orch.client._sync import Client, Task
from llama_orch.client._version import SUPPORTED_API_VERSIONS, VersionRange

__all__ = [
    "DEFAULT",
    "DEFAULT_BASE_URL",
    "ERROR_CLASSES",
    "SUPPORTED_API_VERSIONS",
    "APIError",
    "AdaptiveLimiter",
    "AdmissionRejectError",
    "AsyncClient",
    "AsyncTask",
    "BackpressureError",
    "BudgetExceededError",
    "Client",
    "ConflictError",
    "CtxExceededError",
    "DeadlineUnmetError",
    "DecodeTimeoutError",
    "DefaultType",
    "DeterminismUnsupportedError",
    "EngineError",
    "EngineFailureError",
    "FetchFailedError",
    "ForbiddenError",
    "IncompatibleServerError",
    "InternalServerError",
    "InvalidParamsError",
    "InvalidRequestError",
    "LimiterStats",
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
    "ResponseInfo",
    "RetryPolicy",
    "SSEParser",
    "ServerError",
    "ServerSentEvent",
    "ServerUnreachableError",
    "StateConflictError",
    "StreamInterruptedError",
    "Task",
    "TaskCancelledError",
    "TaskEvent",
    "TaskExistsError",
    "TaskResult",
    "TransportError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownEngineError",
    "UnknownModelError",
    "UnknownPoolError",
    "UntrustedArtifactError",
    "VersionRange",
    "WorkerResetError",
    "WorkloadUnsupportedError",
    "last_response",
]
