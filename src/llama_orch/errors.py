"""The error tree.

::

    Exception
    ├── OrchError                 operational: carries an ErrorCode, becomes an error envelope
    │   ├── AdmissionError        refused before enqueue (4xx/503), nothing was queued
    │   │   └── QueueFullError    429: the pool's bounded queue is full
    │   ├── EngineError           the engine failed while serving a task (WORKER_RESET, ...)
    │   └── ModelUnavailable      a pool's model cannot be provisioned: the pool stays unready (POOL_UNREADY)
    │       └── ModelFetchForbidden  not cached, and the policy forbids network fetches
    └── ConfigError (ValueError)  misuse: a configuration that can never work

Operational errors say what happened and whether retrying can help; misuse errors say what to fix.
"""

from __future__ import annotations

from llama_orch_api import ERROR_STATUS, ErrorCode, ErrorEnvelope


class OrchError(Exception):
    """An operational error with a code from the taxonomy."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retriable: bool = False,
        retry_after_ms: int | None = None,
        policy_label: str | None = None,
        engine: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retriable = retriable
        self.retry_after_ms = retry_after_ms
        self.policy_label = policy_label
        self.engine = engine
        self.details = details

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def envelope(self, correlation_id: str | None = None) -> ErrorEnvelope:
        return ErrorEnvelope(
            code=self.code,
            message=self.message,
            engine=self.engine,
            retriable=self.retriable,
            retry_after_ms=self.retry_after_ms,
            policy_label=self.policy_label,
            details=self.details,
            correlation_id=correlation_id,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message})"


class AdmissionError(OrchError):
    """The task was refused before it was queued."""


class QueueFullError(AdmissionError):
    """The target pool's queue is full and its policy could not make room."""


class EngineError(OrchError):
    """An engine failed while serving a task; raised by adapters ``from`` the engine's own error."""


class ConfigError(ValueError):
    """A configuration that cannot work (a programming or operator mistake, not a runtime fault)."""


class ModelUnavailable(OrchError):
    """A pool's model could not be turned into a local file (missing, download failed, digest or
    size refused). The pool stays unready and admission answers ``503 POOL_UNREADY`` with this
    message. ``retriable`` says whether trying again later can help (a network failure can)."""

    def __init__(self, message: str, *, retriable: bool = False, details: dict[str, object] | None = None) -> None:
        super().__init__(
            ErrorCode.POOL_UNREADY,
            message,
            retriable=retriable,
            retry_after_ms=5000 if retriable else None,
            details=details,
        )


class ModelFetchForbidden(ModelUnavailable):
    """The model is not in the local cache and the policy (``models.allow_network: false``)
    forbids fetching it: raised at once, without touching the network."""
