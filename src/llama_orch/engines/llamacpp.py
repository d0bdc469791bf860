"""Adapter for llama.cpp's ``llama-server`` (and the mock engine served in its wire format).

Streaming uses ``POST /completion`` with ``"stream": true``; each network read is parsed for all
complete ``data:`` events in it and yielded as one batch, so the relay can coalesce writes.
Closing the stream closes the HTTP connection, which makes ``llama-server`` stop that slot.
``llama-server`` closes the connection after every stream although it announces keep-alive, so
streams ask for ``Connection: close`` (a pooled connection would fail the next request).

A ``strict`` task is sent with the prompt cache off: llama.cpp's logits are not bit-identical
between a prompt evaluated in one batch and one resumed from the cache (its own documentation of
``cache_prompt``), so a cached prefix could change a later run's tokens.

Error mapping (the one place engine failures become our taxonomy; the shared rows are implemented
in :mod:`llama_orch.engines._http`):

=====================================  ====================  =========
engine failure                         code                  retriable
=====================================  ====================  =========
connection refused / DNS / TLS         POOL_UNAVAILABLE      yes
HTTP 503 or 429 (loading, no slot)     POOL_UNAVAILABLE      yes
other HTTP 5xx                         ENGINE_ERROR          yes
HTTP 4xx                               ENGINE_ERROR          no
connection dropped mid-stream          WORKER_RESET          yes
stream ended without ``stop``          WORKER_RESET          yes
error object inside the stream [1]_    ENGINE_ERROR          no
event that is not a JSON object        ENGINE_ERROR          no
=====================================  ====================  =========

.. [1] ``data: {"error": {...}}``, or the ``error: {...}`` line (not an SSE ``data`` field) that
   some builds write; the streams and error answers it is tested against are recorded from a real
   ``llama-server`` (``tests/engines/recorded/llamacpp``).
"""

from __future__ import annotations

from typing import Any

from llama_orch.engines._base import EngineRequest
from llama_orch.engines._http import BEST_EFFORT, HTTPEngine, message_of
from llama_orch_api import Determinism, ErrorCode


class LlamaCppEngine(HTTPEngine):
    """One ``llama-server`` replica at ``base_url``."""

    name = "llamacpp"
    end_marker = "a stop event"
    stream_headers = {"Connection": "close"}

    def __init__(
        self,
        base_url: str,
        *,
        engine_name: str = "llamacpp",
        slots: int = 1,
        ctx_max: int = 4096,
        version: str = "unknown",
        determinism: frozenset[Determinism] = BEST_EFFORT,
    ) -> None:
        super().__init__(
            base_url, engine_name=engine_name, slots=slots, ctx_max=ctx_max, version=version, determinism=determinism
        )

    async def health(self) -> bool:
        return await self.probe(f"{self.base_url}/health")

    async def props(self) -> dict[str, Any]:
        """``GET /props``: context size, slots and build of the running server."""
        data = await self.get_json(f"{self.base_url}/props")
        if not isinstance(data, dict):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered /props with {type(data).__name__}")
        return data

    async def build_request(self, request: EngineRequest) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "n_predict": request.max_tokens,
            "stream": True,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "cache_prompt": request.determinism is not Determinism.strict,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        return f"{self.base_url}/completion", payload

    def parse_event(self, data: str, batch: list[str]) -> bool:
        event = self.json_object(data)
        if "error" in event:
            message = message_of(event) or str(event["error"])
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name}: {message}")
        content = event.get("content")
        if content:
            batch.append(content)
        return bool(event.get("stop"))
