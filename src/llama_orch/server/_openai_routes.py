"""The OpenAI-compatible front door, on the same port: ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` and ``POST /v1/embeddings`` (contract: ``contracts/openapi/openai.yaml``).

Each request is translated (:mod:`llama_orch.server._openai_wire`) into the very ``TaskRequest``
``POST /v1/tasks`` takes and submitted to the same orchestrator: the same admission, queues,
priorities, sessions, budgets, determinism and task records. A streamed answer starts on the same
request: its headers (with ``X-Llorch-Queue-Position`` and ``X-Llorch-Predicted-Start-Ms``) go out
at admission, comments keep the connection alive while the task is queued, and the task's events
become OpenAI chunks as they are appended, everything already there in one write. A client that
goes away cancels its task. Errors are OpenAI's shape (``{"error": {...}}``) with OpenAI's
statuses, before and during a stream.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from aiohttp import web

from llama_orch.errors import OrchError
from llama_orch.scheduler import Orchestrator
from llama_orch.server._http import CID, CONFIG, ORCH, read_body
from llama_orch.server._openai_wire import (
    ChatCompletionRequest,
    ChunkEncoder,
    CompletionRequest,
    EmbeddingRequest,
    FrontDoorTask,
    OpenAIError,
    Timing,
    Usage,
    chat_response,
    completion_response,
    embeddings_response,
    fingerprint,
    models_response,
    openai_error,
    parse_request,
    to_task,
)
from llama_orch_api import Determinism, ErrorCode, ErrorEnvelope

_STARTED = int(time.time())


def _answer(error: OpenAIError, cid: str) -> web.Response:
    return web.Response(
        status=error.status,
        body=json.dumps(error.body()).encode(),
        content_type="application/json",
        headers={**error.headers, "X-Correlation-Id": cid},
    )


def answer_error(error: OrchError, cid: str) -> web.Response:
    """``error`` answered as the front door answers it (also used by the security middleware)."""
    return _answer(openai_error(error), cid)


def _front_door(handler: Any) -> Any:
    """Our errors, raised anywhere before the answer starts, become OpenAI-shaped answers."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except OpenAIError as exc:
            return _answer(exc, request[CID])
        except OrchError as exc:
            return _answer(openai_error(exc), request[CID])
        return response

    return wrapped


def _frames(frames: list[bytes]) -> list[tuple[str, Any]]:
    """``(event, data)`` of task frames (``id: n\\nevent: e\\ndata: d\\n\\n``, as the scheduler writes them)."""
    out = []
    for frame in frames:
        _, event_line, data_line = frame.split(b"\n", 3)[:3]
        out.append((event_line[7:].decode(), json.loads(data_line[6:])))
    return out


def _pool_defaults(orch: Orchestrator, model: str) -> tuple[int, bool]:
    """(the chat default max_tokens, whether strict is offered) of the pools serving ``model``."""
    pools = [p for p in orch.pools.values() if p.model_ref == model]
    if not pools:
        known = ", ".join(sorted({p.model_ref for p in orch.pools.values()}))
        raise OrchError(ErrorCode.UNKNOWN_MODEL, f"The model {model!r} does not exist here; models: {known}")
    return min(p.config.max_tokens for p in pools), all(Determinism.strict in p.determinism for p in pools)


class _Task:
    """One admitted front-door task and what its answer needs."""

    def __init__(self, request: web.Request, front: FrontDoorTask, model: str) -> None:
        orch = request.app[ORCH]
        admitted = orch.submit(front.task)
        self.orch = orch
        self.front = front
        self.model = model
        self.record = orch.get_task(admitted.task_id)
        pool = orch.pools[admitted.pool]
        digest = orch.catalog.model_digest(pool.model_ref) if orch.catalog is not None else None
        self.fingerprint = fingerprint(pool.config.engine, pool.engine_version, digest)
        self.timing = Timing(
            admitted.task_id,
            admitted.pool,
            admitted.queue_position,
            admitted.predicted_start_ms,
            sampler_profile=front.task.sampler_profile_version,
            determinism=front.task.determinism.value,
        )
        self.headers = {**self.timing.headers(), **orch.budget_headers(admitted.session_id)}
        self.id = admitted.task_id
        self.created = int(time.time())
        self.tokens: list[str] = []
        self.end: dict[str, Any] | None = None
        self.error: ErrorEnvelope | None = None
        self.kv_warmth: bool | None = None
        self._cursor = 0

    def take(self) -> list[str]:
        """The token texts appended since the last call; records ``end``/``error`` and timing."""
        frames = self.record.frames
        fresh = frames[self._cursor :]
        self._cursor = len(frames)
        texts: list[str] = []
        for event, data in _frames(fresh):
            if event == "token":
                texts.append(data["t"])
            elif event == "started":
                self.timing.replica = data["replica"]
                self.timing.queue_wait_ms = data["waited_ms"]
            elif event == "metrics":
                self.kv_warmth = data.get("kv_warmth")
            elif event == "end":
                self.end = data
            elif event == "error":
                self.error = ErrorEnvelope.model_validate(data)
        self.tokens.extend(texts)
        return texts

    def finished(self) -> bool:
        return self.record.terminal and self._cursor >= len(self.record.frames)

    def settle(self) -> tuple[str, Usage]:
        """The finish reason and usage, once the task ended; fills in the timing of the answer."""
        rec = self.record
        if rec.first_token_at is not None:
            self.timing.ttft_ms = round((rec.first_token_at - rec.admitted_at) * 1000, 3)
        end = self.end or {}
        self.timing.decode_ms = end.get("decode_time_ms")
        self.timing.kv_warmth = self.kv_warmth
        usage = Usage(end.get("prompt_tokens") or 0, end.get("tokens_out", len(self.tokens)), end.get("cached_tokens"))
        return str(end.get("finish_reason", "stop")), usage

    async def wait(self, heartbeat_s: float) -> bool:
        return await self.record.wait(self._cursor, heartbeat_s)

    def cancel(self) -> None:
        if not self.record.terminal:
            self.orch.cancel(self.id)


async def _generate(request: web.Request, kind: Literal["completion", "chat"]) -> web.StreamResponse:
    orch = request.app[ORCH]
    body = await read_body(request)
    parsed: CompletionRequest | ChatCompletionRequest = (
        parse_request(ChatCompletionRequest, body) if kind == "chat" else parse_request(CompletionRequest, body)
    )
    default_max, offers_strict = _pool_defaults(orch, parsed.model)
    front = to_task(parsed, request.headers, default_max_tokens=default_max, offers_strict=offers_strict)
    task = _Task(request, front, parsed.model)
    heartbeat = request.app[CONFIG].server.heartbeat_s
    if not front.stream:
        return await _whole(task, kind, heartbeat)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Correlation-Id": request[CID],
            **task.headers,
        }
    )
    encoder = ChunkEncoder(kind, task.id, task.created, task.model, task.fingerprint, front.include_usage)
    try:
        await response.prepare(request)
        if start := encoder.start():
            await response.write(start)
        while True:
            texts = task.take()
            out = encoder.tokens(texts) if texts else b""
            if task.finished():
                if task.error is not None:
                    out += openai_error(task.error).event()
                else:
                    finish, usage = task.settle()
                    out += encoder.finish(finish, usage, task.timing)
                await response.write(out)
                break
            if out:
                await response.write(out)
                continue
            if not await task.wait(heartbeat):
                await response.write(b": keep-alive\n\n")
    except (ConnectionError, OSError):
        task.cancel()
        return response
    finally:
        if not task.record.terminal:
            task.cancel()
    await response.write_eof()
    return response


async def _whole(task: _Task, kind: Literal["completion", "chat"], heartbeat: float) -> web.Response:
    try:
        while True:
            task.take()
            if task.finished():
                break
            await task.wait(heartbeat)
    finally:
        if not task.record.terminal:
            task.cancel()  # the client went away before the answer
    if task.error is not None:
        error = openai_error(task.error)
        error.headers.update(task.headers)
        raise error
    finish, usage = task.settle()
    build = chat_response if kind == "chat" else completion_response
    answer = build(
        id=task.id,
        created=task.created,
        model=task.model,
        text="".join(task.tokens),
        finish_reason=finish,
        usage=usage,
        system_fingerprint=task.fingerprint,
        timing=task.timing,
    )
    headers = {**task.headers, "X-Llorch-Queue-Wait-Ms": str(task.timing.queue_wait_ms or 0)}
    if task.timing.ttft_ms is not None:
        headers["X-Llorch-TTFT-Ms"] = str(task.timing.ttft_ms)
    return web.json_response(answer, headers=headers)


@_front_door
async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "completion")


@_front_door
async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "chat")


@_front_door
async def embeddings(request: web.Request) -> web.StreamResponse:
    orch = request.app[ORCH]
    parsed = parse_request(EmbeddingRequest, await read_body(request))
    _pool_defaults(orch, parsed.model)
    front = to_task(parsed, request.headers, default_max_tokens=1, offers_strict=False)
    pools = [p for p in orch.pools.values() if p.model_ref == parsed.model]
    if not any(p.config.serves_embeddings_engine for p in pools):
        raise OrchError(
            ErrorCode.WORKLOAD_UNSUPPORTED,
            f"no pool serving {parsed.model!r} serves embeddings (a pool must set embeddings: true)",
        )
    task = _Task(request, front, parsed.model)
    heartbeat = request.app[CONFIG].server.heartbeat_s
    try:
        while True:
            task.take()
            if task.finished():
                break
            await task.wait(heartbeat)
    finally:
        if not task.record.terminal:
            task.cancel()
    if task.error is not None:
        raise openai_error(task.error)
    vectors = (task.end or {}).get("embeddings")
    if not isinstance(vectors, list):
        raise OrchError(ErrorCode.INTERNAL, "the embedding task ended without vectors")
    _, usage = task.settle()
    answer = embeddings_response(
        vectors,
        model=parsed.model,
        prompt_tokens=usage.prompt_tokens,
        encoding_format=front.encoding_format,
        timing=task.timing,
    )
    return web.json_response(answer, headers=task.headers)


@_front_door
async def list_models(request: web.Request) -> web.StreamResponse:
    orch = request.app[ORCH]
    return web.json_response(models_response([p.model_ref for p in orch.pools.values()], created=_STARTED))


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/models", list_models),
    ("POST", "/v1/completions", completions),
    ("POST", "/v1/chat/completions", chat_completions),
    ("POST", "/v1/embeddings", embeddings),
]
"""The front door's operations (documented in ``contracts/openapi/openai.yaml``)."""

__all__ = ["ROUTES", "answer_error"]
