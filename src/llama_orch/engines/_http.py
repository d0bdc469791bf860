"""What the HTTP engine adapters share: one aiohttp session per replica, the streaming loop over the
SSE parser the SDK uses too (:class:`llama_orch._wire.SSEParser`), and the rows of the error mapping
that every adapter has in common.

Each adapter's module docstring holds its complete error table. The common rows live here, once:

=====================================  ====================  =========  ===========================
failure                                code                  retriable  where
=====================================  ====================  =========  ===========================
connection refused / DNS / TLS         POOL_UNAVAILABLE      yes        :meth:`HTTPEngine.unavailable`
HTTP 429 or 503                        POOL_UNAVAILABLE      yes [1]_   :meth:`HTTPEngine.status_error`
HTTP 401 or 403                        ENGINE_ERROR          no         :meth:`HTTPEngine.status_error`
other HTTP 4xx                         ENGINE_ERROR          no         :meth:`HTTPEngine.status_error`
other HTTP 5xx                         ENGINE_ERROR          yes        :meth:`HTTPEngine.status_error`
connection dropped mid-stream          WORKER_RESET          yes        :meth:`HTTPEngine.stream`
stream ended before its end marker     WORKER_RESET          yes        :meth:`HTTPEngine.stream`
event that is not a JSON object        ENGINE_ERROR          no         :meth:`HTTPEngine.json_object`
an ``error`` event in the stream [2]_  ENGINE_ERROR          no         :meth:`HTTPEngine.error_event`
=====================================  ====================  =========  ===========================

.. [1] ``retry_after_ms`` is the engine's advice, read by :func:`llama_orch._wire.retry_after_ms`
   (the reader the SDK uses for orchestratord's answers): ``X-Backoff-Ms``, ``retry-after-ms`` or
   ``Retry-After``, whichever holds a valid value first; 1000 when the engine advises nothing.
.. [2] ``event: error``, or the ``error: {...}`` line some llama-server builds write instead of a
   ``data:`` event (the parser reads that field as an ``error`` event: ``sse_fields_as_events``).

An adapter subclasses :class:`HTTPEngine` and supplies the request (:meth:`~HTTPEngine.build_request`)
and the meaning of one event (:meth:`~HTTPEngine.parse_event`, given the text of its ``data:``
lines); the streaming loop is shared, so every adapter delivers the tokens read before a failure,
coalesces each network read into one batch, and closes the connection (which stops generation)
when its generator is closed.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from llama_orch._wire import SSEParser, retry_after_ms
from llama_orch.engines._base import Engine, EngineInfo, EngineRequest
from llama_orch.errors import ConfigError, EngineError
from llama_orch_api import Determinism, ErrorCode

DEFAULT_RETRY_AFTER_MS = 1000
BEST_EFFORT = frozenset({Determinism.best_effort})


@dataclass(frozen=True, slots=True)
class EngineTimeouts:
    """How long an adapter waits, in seconds: to connect; for health and metadata (``control_s``);
    for a request answered in one body (embeddings, template, tokenize: ``request_s``). A token
    stream has no total limit here: the scheduler bounds its first token and its silences."""

    connect_s: float = 5.0
    control_s: float = 10.0
    request_s: float = 120.0


_DROPPED = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError)


_orjson_loads = orjson.loads
_DEEP = 64


def _unsure(obj: object, depth: int = 0) -> bool:
    """Whether json.loads must decide: a float is in ``obj`` (or it nests deeper than ``_DEEP``)."""
    kind = type(obj)
    if kind is dict:
        obj = obj.values()  # type: ignore[attr-defined]
    elif kind is not list:
        return kind is float
    if depth == _DEEP:
        return True
    for value in obj:  # type: ignore[attr-defined]
        kind = type(value)
        if kind is float or ((kind is dict or kind is list) and _unsure(value, depth + 1)):
            return True
    return False


def loads(text: str) -> Any:
    """``json.loads(text)``, the same objects or the same exception, in a fifth of the time for an event.

    orjson decodes ``text`` first. Where its answer can differ from json.loads's, json.loads
    answers instead: orjson refuses what json takes beyond RFC 8259 (NaN, Infinity, a number that
    overflows to inf, lone surrogates, nesting past 1,024: ValueError), it reads an integer beyond
    64 bits as a float, and it nests deeper than json's recursion limit allows. So a result with a
    float anywhere, or nested deeper than 64, is decoded again by json.loads (an engine's last
    event, with its timings), and so is anything orjson refuses (json raises its own error).
    """
    try:
        obj = _orjson_loads(text)
    except ValueError:  # orjson.JSONDecodeError is a json.JSONDecodeError
        return json.loads(text)
    if _unsure(obj):
        return json.loads(text)
    return obj


def message_of(data: object) -> str | None:
    """The human message in an engine's error object, whatever its shape.

    Covers ``{"error": {"message": ...}}`` (OpenAI, vLLM, llama.cpp), ``{"error": "..."}`` (TGI,
    Triton), ``{"object": "error", "message": ...}`` (older vLLM) and ``{"detail": "..."}``.
    """
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if found := message_of(data.get(key)):
                return found
    return None


def error_message(body: str) -> str:
    """The message in an HTTP error body, or the start of the body when it has no known shape."""
    try:
        found = message_of(json.loads(body))
    except ValueError:
        found = None
    return (found or body.strip())[:500]


class HTTPEngine(Engine):
    """Base of the HTTP adapters: session lifecycle, the streaming loop, and the common error rows."""

    #: What ends a stream, for messages; ``None``: the end of the body ends it, after one event or more.
    end_marker: str | None = None
    #: Headers of the streaming request only (e.g. ``Connection: close`` for a server that closes
    #: the connection after every stream while announcing keep-alive).
    stream_headers: Mapping[str, str] = {}
    #: Non-standard SSE fields read as events of that name (see :class:`llama_orch._wire.SSEParser`).
    sse_fields_as_events: tuple[str, ...] = ("error",)
    #: Set per instance (the engine registry does, from the pool's settings) before :meth:`start`.
    timeouts: EngineTimeouts = EngineTimeouts()

    def __init__(
        self,
        base_url: str,
        *,
        engine_name: str,
        slots: int,
        ctx_max: int,
        version: str,
        determinism: frozenset[Determinism],
        api_key_env: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.engine_name = engine_name
        self.api_key_env = api_key_env
        self._info = EngineInfo(engine_name, version, ctx_max, slots, determinism)
        self._api_key: str | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is not None:
            return
        headers: dict[str, str] = {}
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env, "")
            if not key:
                raise ConfigError(
                    f"{self.engine_name}: the API key variable ${self.api_key_env} is not set in the environment"
                )
            self._api_key = key
            headers["Authorization"] = f"Bearer {key}"
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect_s),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} used before start()")
        return self._session

    def describe(self) -> EngineInfo:
        return self._info

    async def fetch_info(self) -> EngineInfo:
        """Ask the running engine about itself; :meth:`describe` answers with what it said from then on.

        The default asks nothing and returns the constructor's values.
        """
        return self._info

    # -- requests --------------------------------------------------------------------------------

    async def probe(self, url: str) -> bool:
        """True when ``GET url`` answers 200; any failure is False."""
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeouts.control_s)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def get_json(self, url: str) -> Any:
        """``GET url`` and its JSON body, failures mapped like a stream's."""
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeouts.control_s)) as resp:
                await self.check_status(resp)
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.unavailable(exc) from exc
        except ValueError as exc:
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered {url} with invalid JSON") from exc

    async def post_json(self, url: str, payload: Mapping[str, Any]) -> Any:
        """``POST url`` with a JSON body (not a stream) and its JSON answer, failures mapped like a stream's;
        bounded by ``timeouts.request_s``."""
        limit = aiohttp.ClientTimeout(total=self.timeouts.request_s)
        try:
            async with self.session.post(url, json=payload, timeout=limit) as resp:
                await self.check_status(resp)
                return await resp.json(content_type=None)
        except TimeoutError as exc:
            raise self.error(
                ErrorCode.DECODE_TIMEOUT,
                f"{self.engine_name} did not answer {url} within {limit.total} s",
                retriable=True,
                retry_after_ms=DEFAULT_RETRY_AFTER_MS,
            ) from exc
        except aiohttp.ClientError as exc:
            raise self.unavailable(exc) from exc
        except ValueError as exc:
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered {url} with invalid JSON") from exc

    @abc.abstractmethod
    async def build_request(self, request: EngineRequest) -> tuple[str, dict[str, Any]]:
        """The URL to POST and the JSON payload that stream ``request``."""

    @abc.abstractmethod
    def parse_event(self, data: str, batch: list[str]) -> bool:
        """Append the tokens in one event's data to ``batch``; True at the event that ends the stream.

        Raise an :class:`EngineError` (see :meth:`error`) for an error event or a malformed one.
        """

    def parse_for(self, request: EngineRequest, data: str, batch: list[str]) -> bool:
        """:meth:`parse_event` with the request at hand, for adapters that fill in its ``report``."""
        return self.parse_event(data, batch)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        url, payload = await self.build_request(request)
        try:
            resp = await self.session.post(url, json=payload, headers=self.stream_headers)
        except aiohttp.ClientError as exc:
            raise self.unavailable(exc) from exc
        async with resp:
            await self.check_status(resp)
            parser = SSEParser(fields_as_events=self.sse_fields_as_events)
            events = 0
            try:
                async for chunk in resp.content.iter_any():
                    batch: list[str] = []
                    failure: EngineError | None = None
                    finished = False
                    for event in parser.feed(chunk):
                        events += 1
                        try:
                            if event.event == "error":
                                raise self.error_event(event.data)
                            finished = self.parse_for(request, event.data, batch)
                        except EngineError as exc:
                            failure = exc
                            break
                        if finished:
                            break
                    # Tokens that arrived before a failure in the same read are still delivered.
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                    if finished:
                        return
            except _DROPPED as exc:
                raise self.reset(f"connection to {self.engine_name} dropped mid-stream: {exc}") from exc
        if self.end_marker is None and events:
            return
        raise self.reset(f"{self.engine_name} ended the stream without {self.end_marker or 'any event'}")

    # -- the common error rows -------------------------------------------------------------------

    def error(
        self, code: ErrorCode, message: str, *, retriable: bool = False, retry_after_ms: int | None = None
    ) -> EngineError:
        return EngineError(
            code, self.scrub(message), engine=self.engine_name, retriable=retriable, retry_after_ms=retry_after_ms
        )

    def scrub(self, text: str) -> str:
        """``text`` with the API key, should an engine echo it, masked."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def unavailable(self, exc: BaseException) -> EngineError:
        return self.error(
            ErrorCode.POOL_UNAVAILABLE,
            f"{self.engine_name} at {self.base_url} is unreachable: {exc}",
            retriable=True,
            retry_after_ms=DEFAULT_RETRY_AFTER_MS,
        )

    def reset(self, message: str) -> EngineError:
        return self.error(ErrorCode.WORKER_RESET, message, retriable=True, retry_after_ms=DEFAULT_RETRY_AFTER_MS)

    def error_event(self, data: str) -> EngineError:
        """The error for an ``error`` event inside a stream: the engine's message, not retriable."""
        return self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name}: {error_message(data)}")

    def malformed(self, data: str) -> EngineError:
        return self.error(ErrorCode.ENGINE_ERROR, f"malformed event from {self.engine_name}: {data[:200]!r}")

    def json_object(self, data: str) -> dict[str, Any]:
        """One event's data as a JSON object, or a malformed-event error."""
        try:
            obj = loads(data)
        except ValueError as exc:
            raise self.malformed(data) from exc
        if not isinstance(obj, dict):
            raise self.malformed(data)
        return obj

    async def check_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status >= 400:
            raise self.status_error(resp.status, await resp.text(errors="replace"), resp.headers)

    def status_error(self, status: int, body: str, headers: Mapping[str, str]) -> EngineError:
        """The error for an HTTP error answer; adapters refine it where their engine says more."""
        if status in (401, 403):
            # The body is left out: some APIs quote part of the key back.
            return self.auth_error(status)
        message = error_message(body)
        if status in (429, 503):
            return self.error(
                ErrorCode.POOL_UNAVAILABLE,
                f"{self.engine_name} is overloaded or loading ({status}): {message}",
                retriable=True,
                retry_after_ms=retry_after_ms(headers, DEFAULT_RETRY_AFTER_MS),
            )
        return self.error(
            ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered {status}: {message}", retriable=status >= 500
        )

    def auth_error(self, status: int) -> EngineError:
        where = f"; check the key in ${self.api_key_env}" if self.api_key_env else ""
        err = self.error(
            ErrorCode.ENGINE_ERROR,
            f"authentication with {self.engine_name} at {self.base_url} failed ({status}){where}",
        )
        err.details = {"reason": "auth_failed", "status": status}
        return err
