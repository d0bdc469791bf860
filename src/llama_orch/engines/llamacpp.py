"""Adapter for llama.cpp's ``llama-server`` (and the mock engine served in its wire format).

Streaming uses ``POST /completion`` with ``"stream": true``; each network read is parsed for all
complete ``data:`` events in it and yielded as one batch, so the relay can coalesce writes.
Closing the stream closes the HTTP connection, which makes ``llama-server`` stop that slot.

Error mapping (the one place engine failures become our taxonomy):

=====================================  ====================  =========
engine failure                         code                  retriable
=====================================  ====================  =========
connection refused / DNS / TLS         POOL_UNAVAILABLE      yes
HTTP 503 or 429 (loading, no slot)     POOL_UNAVAILABLE      yes
other HTTP 5xx                         ENGINE_ERROR          yes
HTTP 4xx                               ENGINE_ERROR          no
connection dropped mid-stream          WORKER_RESET          yes
stream ended without ``stop``          WORKER_RESET          yes
error object inside the stream         ENGINE_ERROR          no
=====================================  ====================  =========
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from llama_orch.engines._base import Engine, EngineInfo, EngineRequest
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode


class LlamaCppEngine(Engine):
    """One ``llama-server`` replica at ``base_url``."""

    name = "llamacpp"

    def __init__(
        self,
        base_url: str,
        *,
        engine_name: str = "llamacpp",
        slots: int = 1,
        ctx_max: int = 4096,
        version: str = "unknown",
        determinism: frozenset[Determinism] = frozenset({Determinism.best_effort}),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.engine_name = engine_name
        self._info = EngineInfo(engine_name, version, ctx_max, slots, determinism)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("LlamaCppEngine used before start()")
        return self._session

    def describe(self) -> EngineInfo:
        return self._info

    async def health(self) -> bool:
        try:
            async with self.session.get(f"{self.base_url}/health") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def props(self) -> dict[str, Any]:
        """``GET /props``: context size, slots and build of the running server."""
        try:
            async with self.session.get(f"{self.base_url}/props") as resp:
                await _raise_for_status(resp, self.engine_name)
                data: dict[str, Any] = await resp.json()
                return data
        except aiohttp.ClientError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> EngineError:
        return EngineError(
            ErrorCode.POOL_UNAVAILABLE,
            f"{self.engine_name} at {self.base_url} is unreachable: {exc}",
            engine=self.engine_name,
            retriable=True,
            retry_after_ms=1000,
        )

    async def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "n_predict": request.max_tokens,
            "stream": True,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "cache_prompt": True,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        try:
            resp = await self.session.post(f"{self.base_url}/completion", json=payload)
        except aiohttp.ClientError as exc:
            raise self._unavailable(exc) from exc
        async with resp:
            await _raise_for_status(resp, self.engine_name)
            buffer = b""
            try:
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    events = buffer.split(b"\n\n")
                    buffer = events.pop()
                    batch: list[str] = []
                    failure: EngineError | None = None
                    finished = False
                    for event in events:
                        try:
                            finished = self._parse_event(event, batch)
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
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as exc:
                raise self._reset(f"connection to {self.engine_name} dropped mid-stream: {exc}") from exc
            raise self._reset(f"{self.engine_name} ended the stream without a stop event")

    def _reset(self, message: str) -> EngineError:
        return EngineError(
            ErrorCode.WORKER_RESET, message, engine=self.engine_name, retriable=True, retry_after_ms=1000
        )

    def _parse_event(self, event: bytes, batch: list[str]) -> bool:
        """Append the event's token to ``batch``; True at the final event."""
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                data = json.loads(line[5:])
                if not isinstance(data, dict):
                    raise ValueError("event data is not a JSON object")
            except ValueError as exc:
                raise EngineError(
                    ErrorCode.ENGINE_ERROR,
                    f"malformed event from {self.engine_name}: {line[:200]!r}",
                    engine=self.engine_name,
                ) from exc
            if "error" in data:
                err = data["error"]
                message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
                raise EngineError(ErrorCode.ENGINE_ERROR, f"{self.engine_name}: {message}", engine=self.engine_name)
            content = data.get("content")
            if content:
                batch.append(content)
            if data.get("stop"):
                return True
        return False


async def _raise_for_status(resp: aiohttp.ClientResponse, engine: str) -> None:
    if resp.status < 400:
        return
    text = (await resp.text())[:500]
    if resp.status in (429, 503):
        raise EngineError(
            ErrorCode.POOL_UNAVAILABLE,
            f"{engine} is busy or loading ({resp.status}): {text}",
            engine=engine,
            retriable=True,
            retry_after_ms=1000,
        )
    raise EngineError(
        ErrorCode.ENGINE_ERROR,
        f"{engine} answered {resp.status}: {text}",
        engine=engine,
        retriable=resp.status >= 500,
    )
