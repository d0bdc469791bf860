"""What :class:`~llama_orch.client.Task` and :class:`~llama_orch.client.AsyncTask` share: the
admission and what the task's events told so far."""

from __future__ import annotations

from llama_orch.client._base import TaskEvent, TaskResult, stream_error
from llama_orch_api import AdmissionResponse, EndEvent, ErrorEnvelope, StartedEvent, TokenEvent


class TaskState:
    """The admission, the events seen so far, and how the task ended (once it has)."""

    def __init__(self, admission: AdmissionResponse, correlation_id: str | None) -> None:
        self.admission = admission
        self.task_id = admission.task_id
        self.correlation_id = correlation_id
        """The ``X-Correlation-Id`` of the submission (the server's echo of it)."""
        self.last_event_id: int | None = None
        """Id of the last event received; a new stream resumes after it."""
        self.started: StartedEvent | None = None
        self.outcome: EndEvent | ErrorEnvelope | None = None
        """The terminal event's payload; None while the task runs."""
        self._tokens: list[str] = []

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def error_code(self) -> str | None:
        return str(self.outcome.code) if isinstance(self.outcome, ErrorEnvelope) else None

    @property
    def text_so_far(self) -> str:
        return "".join(self._tokens)

    def _observe(self, event: TaskEvent) -> None:
        if event.id is not None:
            self.last_event_id = event.id
        data = event.data
        if isinstance(data, TokenEvent):
            self._tokens.append(data.t)
        elif isinstance(data, StartedEvent):
            self.started = data
        elif isinstance(data, EndEvent | ErrorEnvelope):
            self.outcome = data

    def _result(self) -> TaskResult:
        if isinstance(self.outcome, EndEvent):
            return TaskResult(self.task_id, self.text_so_far, self.outcome, self.started, self.correlation_id)
        assert self.outcome is not None, "the stream ended without a terminal event"
        raise stream_error(TaskEvent("error", self.last_event_id, self.outcome), self.task_id, self.correlation_id)

    def __repr__(self) -> str:
        state = "running" if self.outcome is None else ("ended" if self.error_code is None else self.error_code)
        return f"<{type(self).__name__} {self.task_id} pool={self.admission.pool} {state}>"
