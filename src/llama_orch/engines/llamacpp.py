"""Adapter for llama.cpp's ``llama-server`` (and the mock engine served in its wire format).

Streaming uses ``POST /completion`` with ``"stream": true``; each network read is parsed for all
complete ``data:`` events in it and yielded as one batch, so the relay can coalesce writes.
Closing the stream closes the HTTP connection, which makes ``llama-server`` stop that slot.
``llama-server`` closes the connection after every stream although it announces keep-alive, so
streams ask for ``Connection: close`` (a pooled connection would fail the next request).

A ``strict`` task is sent with the prompt cache off: llama.cpp's logits are not bit-identical
between a prompt evaluated in one batch and one resumed from the cache (its own documentation of
``cache_prompt``), so a cached prefix could change a later run's tokens.

Workloads:

- ``completion``: ``POST /completion`` as above.
- ``chat``: ``POST /v1/chat/completions`` with the request's ``messages``; llama-server renders
  them with the model's own chat template (Jinja from the GGUF) and streams OpenAI chunks
  (``choices[0].delta.content``) ending in ``data: [DONE]``. The llama.cpp fields (``id_slot``,
  ``cache_prompt``, ``top_k``, ``seed``) ride along in the same body. :meth:`LlamaCppEngine.apply_template`
  (``POST /apply-template``) shows the text the template makes, without decoding.
- ``embedding``: ``POST /v1/embeddings`` (``encoding_format: float``), on a server started with
  ``--embeddings`` and a pooling (``--pooling mean``; ``embeddings=True`` here). Such a server
  still decodes completions and chat; one without the flag answers 501.

KV reuse: ``request.slot`` is sent as ``id_slot`` and ``cache_prompt`` as asked (never for a strict
task), so a session's turns on one slot re-evaluate only their new suffix; the engine's count of
cached prompt tokens (``timings.cache_n``) is reported in ``request.report``.

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
HTTP 501 (no ``--embeddings``)         ENGINE_ERROR          no
embeddings: not one vector per input   ENGINE_ERROR          no
embeddings, ``embeddings=False``       WORKLOAD_UNSUPPORTED  no
=====================================  ====================  =========

.. [1] ``data: {"error": {...}}``, or the ``error: {...}`` line (not an SSE ``data`` field) that
   some builds write; the streams and error answers it is tested against are recorded from a real
   ``llama-server`` (``tests/engines/recorded/llamacpp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from llama_orch.engines._base import (
    TEXT_WORKLOADS,
    ChatMessage,
    Embeddings,
    EngineInfo,
    EngineRequest,
    StreamReport,
)
from llama_orch.engines._http import BEST_EFFORT, HTTPEngine, message_of
from llama_orch.engines.openai import embeddings_payload, parse_embeddings
from llama_orch_api import Determinism, ErrorCode, Workload


class LlamaCppEngine(HTTPEngine):
    """One ``llama-server`` replica at ``base_url``."""

    name = "llamacpp"
    end_marker = "a stop event (or data: [DONE])"
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
        embeddings: bool = False,
        api_key_env: str | None = None,
    ) -> None:
        super().__init__(
            base_url,
            engine_name=engine_name,
            slots=slots,
            ctx_max=ctx_max,
            version=version,
            determinism=determinism,
            api_key_env=api_key_env,
        )
        self.embeddings = embeddings
        self._props_slots: int | None = None
        workloads = TEXT_WORKLOADS | {Workload.embedding} if embeddings else TEXT_WORKLOADS
        self._info = replace(self._info, workloads=workloads)

    @property
    def pinnable_slots(self) -> int | None:
        """The server's ``total_slots`` once ``GET /props`` said it (:meth:`fetch_info`)."""
        return self._props_slots

    async def health(self) -> bool:
        return await self.probe(f"{self.base_url}/health")

    async def props(self) -> dict[str, Any]:
        """``GET /props``: context size, slots and build of the running server."""
        data = await self.get_json(f"{self.base_url}/props")
        if not isinstance(data, dict):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered /props with {type(data).__name__}")
        return data

    async def fetch_info(self) -> EngineInfo:
        """Context per slot, slots and build from ``GET /props``."""
        props = await self.props()
        info = self._info
        settings = props.get("default_generation_settings")
        if isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
            info = replace(info, ctx_max=settings["n_ctx"])
        if isinstance(props.get("total_slots"), int):
            info = replace(info, slots=props["total_slots"])
            self._props_slots = props["total_slots"]
        if isinstance(props.get("build_info"), str):
            info = replace(info, version=props["build_info"])
        self._info = info
        return info

    async def apply_template(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt the model's chat template makes of ``messages`` (``POST /apply-template``)."""
        data = await self.post_json(f"{self.base_url}/apply-template", {"messages": _messages(messages)})
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if not isinstance(prompt, str):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered /apply-template without a prompt")
        return prompt

    async def tokenize(self, text: str) -> list[int]:
        """The model's tokens for ``text`` (``POST /tokenize``), to count a prompt before admitting it."""
        data = await self.post_json(f"{self.base_url}/tokenize", {"content": text})
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered /tokenize without tokens")
        return tokens

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        if not self.embeddings:
            raise self.unsupported(Workload.embedding)
        data = await self.post_json(f"{self.base_url}/v1/embeddings", embeddings_payload(inputs, None))
        return parse_embeddings(self, data, len(inputs))

    async def build_request(self, request: EngineRequest) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "stream": True,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "cache_prompt": request.reuses_cache,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.slot is not None:
            payload["id_slot"] = request.slot
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.messages is not None:
            payload["messages"] = _messages(request.messages)
            payload["max_tokens"] = request.max_tokens
            return f"{self.base_url}/v1/chat/completions", payload
        payload["prompt"] = request.prompt
        payload["n_predict"] = request.max_tokens
        return f"{self.base_url}/completion", payload

    def parse_event(self, data: str, batch: list[str]) -> bool:
        return self.parse_for(None, data, batch)

    def parse_for(self, request: EngineRequest | None, data: str, batch: list[str]) -> bool:
        if data[:1] != "{" and data.strip() == "[DONE]":  # (an object, every event but that, is not it)
            return True
        event = self.json_object(data)
        if "error" in event:
            message = message_of(event) or str(event["error"])
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name}: {message}")
        if "choices" in event:
            return self._chat_chunk(event, data, batch, request.report if request is not None else None)
        content = event.get("content")
        if content:
            batch.append(content)
        if event.get("stop"):
            report = request.report if request is not None else None
            _report(report, event, "length" if event.get("stop_type") == "limit" else "stop")
            return True
        return False

    def _chat_chunk(self, event: dict[str, Any], data: str, batch: list[str], report: StreamReport | None) -> bool:
        """One ``/v1/chat/completions`` chunk; the stream goes on until ``[DONE]``."""
        choices = event["choices"]
        if not isinstance(choices, list):
            raise self.malformed(data)
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                raise self.malformed(data)
            text = delta.get("content")
            if isinstance(text, str) and text:
                batch.append(text)
            if choice.get("finish_reason") is not None:
                _report(report, event, "length" if choice["finish_reason"] == "length" else "stop")
        return False


def _report(report: StreamReport | None, event: dict[str, Any], finish_reason: Literal["stop", "length"]) -> None:
    """Copy the engine's counts (``timings``: ``cache_n`` + ``prompt_n`` prompt tokens) into ``report``."""
    if report is None:
        return
    report.finish_reason = finish_reason
    timings = event.get("timings")
    if isinstance(timings, dict):
        cached, evaluated = timings.get("cache_n"), timings.get("prompt_n")
        if isinstance(cached, int) and isinstance(evaluated, int):
            report.cached_tokens = cached
            report.prompt_tokens = cached + evaluated
        if isinstance(timings.get("predicted_n"), int):
            report.completion_tokens = timings["predicted_n"]


def _messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]
