"""The asyncio client, :class:`AsyncClient`, and its task handle, :class:`AsyncTask`.

This is the only hand-written twin: ``_sync.py`` (:class:`Client`, :class:`Task`) is generated
from it by ``scripts/unasync`` and checked by ``tests/client/test_sync_generated.py``. Why
generation rather than sans-IO flows driven by two thin drivers: what does not wait already lives
in ``_base.py`` (operations, headers, errors, decoding, version check), so what is left here is
control flow around waits (the permit/retry loop of :meth:`AsyncClient.submit`, the reconnecting
stream of ``_events``). Written as plain loops it reads top to bottom; lifted into sans-IO state
machines it would read as a protocol of yielded commands, in both drivers. The twins differ only
by keywords, names and the asyncio primitives, which a mechanical rewrite gets right every time,
and the generated file is ordinary code that tracebacks and debuggers show as it runs.
"""

# ``timeout`` is each request's HTTP timeout, passed to httpx as in its own API (and the twin's),
# not a deadline for the coroutine that asyncio.timeout would express.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from llama_orch._wire import SSEParser
from llama_orch.client._base import (
    DEFAULT,
    DEFAULT_BASE_URL,
    Call,
    DefaultType,
    TaskEvent,
    TaskResult,
    _BaseClient,
    artifact_create,
    stream_error,
)
from llama_orch.client._errors import (
    APIError,
    BackpressureError,
    LlamaOrchError,
    QueueFullDropLruError,
    StreamInterruptedError,
    TransportError,
)
from llama_orch.client._limiter import AdaptiveLimiter, AsyncGate, Permit
from llama_orch.client._retry import RetryPolicy
from llama_orch.client._task import TaskState
from llama_orch.client._version import SUPPORTED_API_VERSIONS
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
    ModelState,
    ModelStateRequest,
    PoolHealth,
    PoolOperation,
    ReplicaSetList,
    SessionInfo,
    TaskRequest,
    VerifyResult,
)

T = TypeVar("T")
Cid = str | None | DefaultType
Timeout = float | None | DefaultType


class AsyncClient(_BaseClient):
    """Asyncio client for orchestratord; use it from one event loop, shared by its tasks.

    >>> async with AsyncClient("http://127.0.0.1:8080") as client:  # doctest: +SKIP
    ...     result = await client.run(prompt="Write a haiku about queues.", max_tokens=32, seed=7)
    ...     print(result.text)
    """

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            token=token,
            timeout=timeout,
            retry=retry,
            limiter=limiter,
            api_versions=api_versions,
            check_api_version=check_api_version,
            correlation_id=correlation_id,
            headers=headers,
            stream_reconnects=stream_reconnects,
            stream_read_timeout=stream_read_timeout,
        )
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._gate = AsyncGate(self.limiter) if self.limiter is not None else None
        self._version_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- sending ------------------------------------------------------------------------------------

    async def _send(self, call: Call[Any], cid: str | None, timeout: Timeout) -> httpx.Response:
        """One attempt: the response when it succeeded, else raises the SDK's error."""
        request = self._request(self._http, call, cid, self._timeout(call, timeout))
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, request) from exc
        self._record(response)
        if response.is_success:
            return response
        raise self._error(response, await response.aread())

    async def _call(self, call: Call[T], correlation_id: Cid, timeout: Timeout, *, check: bool = True) -> T:
        if check:
            await self._ensure_compatible()
        cid = self._cid(correlation_id)
        attempt = 0
        while True:
            try:
                return call.parse(await self._send(call, cid, timeout))
            except LlamaOrchError as error:
                delay = self.retry.delay_s(attempt, error, idempotent=call.idempotent)
                if delay is None:
                    raise
            attempt += 1
            await asyncio.sleep(delay)

    async def _ensure_compatible(self) -> None:
        if self._version_known():
            return
        async with self._version_lock:
            if not self._version_known():
                caps = await self._call(self._op_capabilities(), DEFAULT, DEFAULT, check=False)
                self._observe_capabilities(caps)

    def _set_ceiling(self, ceiling: int) -> None:
        if self._gate is not None:
            self._gate.set_ceiling(ceiling)

    # -- tasks --------------------------------------------------------------------------------------

    async def submit(
        self,
        request: TaskRequest | None = None,
        /,
        *,
        correlation_id: Cid = DEFAULT,
        timeout: Timeout = DEFAULT,
        **fields: Any,
    ) -> AsyncTask:
        """Admit a task (``POST /v1/tasks``) and return its handle; see :class:`AsyncTask`.

        Waits for room in the client's concurrency limit first; a 429 is retried after the
        server's ``Retry-After`` (with jitter) as the :class:`RetryPolicy` allows. The task holds
        its place in the limit until its stream ends or the handle is closed::

            async with await client.submit(prompt="hello", max_tokens=16) as task:
                async for event in task.astream():
                    ...
        """
        task_request = self._task_request(request, fields)
        await self._ensure_compatible()
        call = self._op_create_task(task_request)
        cid = self._cid(correlation_id)
        attempt = 0
        while True:
            permit = await self._gate.acquire() if self._gate is not None else None
            try:
                response = await self._send(call, cid, timeout)
                admission = call.parse(response)
            except LlamaOrchError as error:
                if permit is not None and self._gate is not None:
                    if isinstance(error, BackpressureError):
                        self._gate.backpressure(permit)
                    self._gate.release(permit)
                delay = self.retry.delay_s(attempt, error, idempotent=call.idempotent)
                if delay is None:
                    raise
                attempt += 1
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if permit is not None and self._gate is not None:
                    self._gate.release(permit)
                raise
            if permit is not None and self._gate is not None:
                self._gate.admitted(permit, admission.backoff_ms)
            return AsyncTask(self, admission, permit, response.headers.get("X-Correlation-Id", cid))

    async def create_task(
        self, request: TaskRequest | None = None, /, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT,
        **fields: Any,
    ) -> AdmissionResponse:  # fmt: skip
        """``POST /v1/tasks`` alone: the admission, with no handle and outside the concurrency limit."""
        return await self._call(self._op_create_task(self._task_request(request, fields)), correlation_id, timeout)

    async def run(
        self, request: TaskRequest | None = None, /, *, correlation_id: Cid = DEFAULT, **fields: Any
    ) -> TaskResult:
        """Submit a task and stream it to its end: its text and ``end`` event."""
        async with await self.submit(request, correlation_id=correlation_id, **fields) as task:
            return await task.result()

    async def astream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        raise_on_error: bool = True,
        correlation_id: Cid = DEFAULT,
    ) -> AsyncGenerator[TaskEvent, None]:
        """A task's events (``GET /v1/tasks/{id}/stream``), resumed with ``Last-Event-ID`` when the
        connection drops, until its terminal event. An ``error`` event raises its typed error
        unless ``raise_on_error`` is false, in which case it is yielded as the last event."""
        cid = self._cid(correlation_id)
        events = self._events(task_id, last_event_id, cid)
        try:
            async for event in events:
                if event.event == "error" and raise_on_error:
                    raise stream_error(event, task_id, cid)
                yield event
        finally:
            await events.aclose()

    async def _events(
        self, task_id: str, last_event_id: int | None, cid: str | None
    ) -> AsyncGenerator[TaskEvent, None]:
        await self._ensure_compatible()
        failures = 0
        while True:
            call = self._stream_call(task_id, last_event_id)
            request = self._request(self._http, call, cid, self._stream_timeout(DEFAULT))
            parser = SSEParser()
            error: LlamaOrchError
            try:
                response = await self._http.send(request, stream=True)
                try:
                    self._record(response)
                    if response.status_code != 200:
                        error = self._error(response, await response.aread(), task_id=task_id)
                        if not (isinstance(error, APIError) and error.retriable):
                            raise error
                    else:
                        async for chunk in response.aiter_bytes():
                            for sse in parser.feed(chunk):
                                if sse.id is not None and sse.id.isdigit():
                                    last_event_id = int(sse.id)
                                event = self._decode(sse)
                                if event is None:
                                    continue
                                failures = 0
                                yield event
                                if event.terminal:
                                    return
                        error = TransportError(f"the stream of task {task_id!r} ended before its terminal event")
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                error = self._transport_error(exc, request)
            failures += 1
            if failures > self.stream_reconnects:
                raise StreamInterruptedError(
                    f"the stream of task {task_id!r} dropped {failures} times in a row "
                    f"(last event id {last_event_id}): {error}",
                    task_id=task_id,
                    last_event_id=last_event_id,
                    url=str(request.url),
                ) from error
            await asyncio.sleep(self._reconnect_delay(failures, parser.retry))

    async def cancel(self, task_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT) -> None:
        """``POST /v1/tasks/{id}/cancel``: once it returns, no further token is emitted."""
        await self._call(self._op_cancel(task_id), correlation_id, timeout)

    # -- sessions -----------------------------------------------------------------------------------

    async def get_session(
        self, session_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> SessionInfo:
        return await self._call(self._op_get_session(session_id), correlation_id, timeout)

    async def delete_session(
        self, session_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> None:
        await self._call(self._op_delete_session(session_id), correlation_id, timeout)

    # -- discovery and pools ------------------------------------------------------------------------

    async def capabilities(self, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT) -> Capabilities:
        """``GET /v1/capabilities``; also checks the API version and sets the limiter's ceiling."""
        caps = await self._call(self._op_capabilities(), correlation_id, timeout, check=False)
        self._observe_capabilities(caps)
        return caps

    async def replicasets(self, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT) -> ReplicaSetList:
        return await self._call(self._op_replicasets(), correlation_id, timeout)

    async def pool_health(
        self, pool_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> PoolHealth:
        return await self._call(self._op_pool_health(pool_id), correlation_id, timeout)

    async def drain_pool(
        self, pool_id: str, *, deadline_ms: int | None = None, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> PoolOperation:
        """Drain a pool; returns when it is drained (the timeout is at least the deadline)."""
        return await self._call(self._op_drain_pool(pool_id, deadline_ms), correlation_id, timeout)

    async def reload_pool(
        self,
        pool_id: str,
        model_ref: str,
        *,
        deadline_ms: int | None = None,
        correlation_id: Cid = DEFAULT,
        timeout: Timeout = DEFAULT,
    ) -> PoolOperation:
        """Switch a pool to ``model_ref`` atomically; :class:`ReloadFailedError` when rolled back."""
        return await self._call(self._op_reload_pool(pool_id, model_ref, deadline_ms), correlation_id, timeout)

    # -- catalog ------------------------------------------------------------------------------------

    async def create_model(
        self, spec: CatalogModelCreate, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> CatalogModel:
        return await self._call(self._op_create_model(spec), correlation_id, timeout)

    async def list_models(
        self, *, state: ModelState | str | None = None, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> CatalogModelList:
        return await self._call(self._op_list_models(state), correlation_id, timeout)

    async def get_model(
        self, model_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> CatalogModel:
        return await self._call(self._op_get_model(model_id), correlation_id, timeout)

    async def delete_model(self, model_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT) -> None:
        await self._call(self._op_delete_model(model_id), correlation_id, timeout)

    async def verify_model(
        self, model_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> VerifyResult:
        return await self._call(self._op_verify_model(model_id), correlation_id, timeout)

    async def set_model_state(
        self,
        model_id: str,
        state: ModelState | str,
        *,
        reason: str | None = None,
        drain_deadline_ms: int | None = None,
        correlation_id: Cid = DEFAULT,
        timeout: Timeout = DEFAULT,
    ) -> CatalogModel:
        request = ModelStateRequest(state=ModelState(state), reason=reason, drain_deadline_ms=drain_deadline_ms)
        return await self._call(self._op_set_model_state(model_id, request), correlation_id, timeout)

    # -- artifacts ----------------------------------------------------------------------------------

    async def put_artifact(
        self,
        artifact: ArtifactCreate | None = None,
        /,
        *,
        kind: ArtifactKind | str | None = None,
        content: Any = None,
        correlation_id: Cid = DEFAULT,
        timeout: Timeout = DEFAULT,
        **fields: Any,
    ) -> ArtifactRef:
        """Store an artifact (``POST /v1/artifacts``); storing the same one again merges its tags."""
        spec = artifact_create(artifact, kind, content, fields)
        return await self._call(self._op_put_artifact(spec), correlation_id, timeout)

    async def get_artifact(
        self, artifact_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> Artifact:
        return await self._call(self._op_get_artifact(artifact_id), correlation_id, timeout)

    async def list_artifacts(
        self,
        *,
        tags: Sequence[str] = (),
        kind: ArtifactKind | str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        parent: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        correlation_id: Cid = DEFAULT,
        timeout: Timeout = DEFAULT,
    ) -> ArtifactList:
        """One page, newest first; pass ``next_cursor`` back as ``cursor`` for the next."""
        call = self._op_list_artifacts(tags, kind, session_id, task_id, parent, limit, cursor)
        return await self._call(call, correlation_id, timeout)

    async def artifact_lineage(
        self, artifact_id: str, *, correlation_id: Cid = DEFAULT, timeout: Timeout = DEFAULT
    ) -> ArtifactLineage:
        return await self._call(self._op_artifact_lineage(artifact_id), correlation_id, timeout)


class AsyncTask(TaskState):
    """An admitted task: its admission, its events, and its place in the client's limit.

    The place is given back when the stream reaches its terminal event, or when the handle is
    closed (``async with`` does it). Closing does not cancel the task; :meth:`cancel` does.
    """

    def __init__(
        self, client: AsyncClient, admission: AdmissionResponse, permit: Permit | None, cid: str | None
    ) -> None:
        super().__init__(admission, cid)
        self._client = client
        self._permit = permit

    async def __aenter__(self) -> AsyncTask:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Give back the task's place in the concurrency limit (the task itself goes on)."""
        if self._permit is not None and self._client._gate is not None:
            self._client._gate.release(self._permit)

    async def astream(self, *, raise_on_error: bool = True) -> AsyncGenerator[TaskEvent, None]:
        """The task's events from where this handle left off, to the terminal one."""
        if self.outcome is not None:
            return
        events = self._client._events(self.task_id, self.last_event_id, self.correlation_id)
        try:
            async for event in events:
                self._observe(event)
                if event.terminal:
                    self._finish(event)
                    if event.event == "error" and raise_on_error:
                        raise stream_error(event, self.task_id, self.correlation_id)
                yield event
        finally:
            await events.aclose()
            if self.outcome is not None:
                self.close()

    def _finish(self, event: TaskEvent) -> None:
        gate = self._client._gate
        if gate is not None and self._permit is not None:
            if event.event == "error" and self.error_code == QueueFullDropLruError.code_value:
                gate.backpressure(self._permit)
            gate.release(self._permit)

    async def result(self) -> TaskResult:
        """Stream to the end; the text and ``end`` event, or the task's error raised."""
        stream = self.astream()
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()
        return self._result()

    async def text(self) -> str:
        return (await self.result()).text

    async def cancel(self, *, correlation_id: Cid = DEFAULT) -> None:
        await self._client.cancel(self.task_id, correlation_id=correlation_id)


__all__ = ["AsyncClient", "AsyncTask"]
