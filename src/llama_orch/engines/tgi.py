"""Adapter for Hugging Face Text Generation Inference (``text-generation-launcher``).

Streaming uses ``POST /generate_stream`` with ``{"inputs": ..., "parameters": {...}}``; events are
``data: {"token": {"id", "text", "logprob", "special"}, "generated_text": null, "details": null}``
and the last one carries the whole ``generated_text``. Special tokens (the end-of-sequence token
that ends most streams) are not text and are not delivered. Closing the stream closes the
connection, which makes the router drop the request from its batch.

Sampling: TGI refuses ``temperature`` ≤ 0, ``top_p`` outside (0, 1) and ``top_k`` ≤ 0, and
samples whenever any of them is set. So ``temperature == 0`` is greedy (``do_sample: false``, no
sampling fields); otherwise ``do_sample: true`` with ``temperature``, and ``top_p``/``top_k`` only
where they restrict anything. ``seed`` is passed whenever the request has one.

Chat: a request with ``messages`` goes to TGI's Messages API, ``POST /v1/chat/completions``, which
renders them with the model's chat template and streams OpenAI chunks (``choices[0].delta.content``,
``finish_reason`` on the last) ending in ``data: [DONE]``.

Embeddings: TGI itself serves none; Hugging Face's companion server for them,
text-embeddings-inference (TEI), does, with the same error shape. An adapter built with
``embeddings=True`` points at a TEI server and calls ``POST /embed`` with ``{"inputs": [...]}``,
answered by one vector per input (``[[...], [...]]``).

``GET /health`` answers 200 when a shard can take work; ``fetch_info()`` reads ``GET /info``
(``model_id``, ``max_total_tokens`` as ``ctx_max``, ``max_concurrent_requests`` as ``slots``,
``version``).

TGI's errors are ``{"error": "...", "error_type": "..."}``, as an HTTP answer (``/generate``,
proxies) or, because ``/generate_stream`` answers 200 before it queues the request, as an event
inside the stream. The ``error_type`` decides, wherever the error arrives.

Error mapping (the one place engine failures become our taxonomy; the shared HTTP rows are
implemented in :mod:`llama_orch.engines._http`):

=================================================  ====================  =========
engine failure                                     code                  retriable
=================================================  ====================  =========
connection refused / DNS / TLS                     POOL_UNAVAILABLE      yes
``overloaded`` (429 or in stream), HTTP 503        POOL_UNAVAILABLE      yes, after ``Retry-After`` (else 1 s)
``validation`` (422 or in stream)                  ENGINE_ERROR          no
``generation`` (424 or in stream) [1]_             ENGINE_ERROR          yes
``incomplete_generation`` (500 or in stream) [2]_  WORKER_RESET          yes
other HTTP 4xx                                     ENGINE_ERROR          no
other HTTP 5xx                                     ENGINE_ERROR          yes
connection dropped mid-stream                      WORKER_RESET          yes
stream ended without the final event [3]_          WORKER_RESET          yes
other ``{"error": ...}`` event in the stream       ENGINE_ERROR          no
malformed event (not JSON, no ``token.text``)      ENGINE_ERROR          no
chat stream ended without ``data: [DONE]``         WORKER_RESET          yes
``/embed``: not one vector per input               ENGINE_ERROR          no
a workload the adapter was not built for           WORKLOAD_UNSUPPORTED  no
=================================================  ====================  =========

.. [1] A shard failed while decoding the batch; the request itself was accepted.
.. [2] The shard stopped answering before the request finished.
.. [3] The event whose ``generated_text`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from llama_orch._wire import retry_after_ms
from llama_orch.engines._base import TEXT_WORKLOADS, Embeddings, EngineInfo, EngineRequest
from llama_orch.engines._http import BEST_EFFORT, DEFAULT_RETRY_AFTER_MS, HTTPEngine, message_of
from llama_orch.engines.openai import parse_embeddings
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode, Workload

# error_type -> (code, retriable); see the table above.
_ERROR_TYPES: dict[str, tuple[ErrorCode, bool]] = {
    "overloaded": (ErrorCode.POOL_UNAVAILABLE, True),
    "validation": (ErrorCode.ENGINE_ERROR, False),
    "generation": (ErrorCode.ENGINE_ERROR, True),
    "incomplete_generation": (ErrorCode.WORKER_RESET, True),
}


class TGIEngine(HTTPEngine):
    """One Text Generation Inference server at ``base_url``.

    >>> engine = TGIEngine("http://gpu-box:8080")
    """

    name = "tgi"
    end_marker = "the final event (generated_text; data: [DONE] for chat)"

    def __init__(
        self,
        base_url: str,
        *,
        engine_name: str = "tgi",
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
        self.model_id: str | None = None
        self.embeddings = embeddings
        self._info = replace(self._info, workloads=frozenset({Workload.embedding}) if embeddings else TEXT_WORKLOADS)

    async def health(self) -> bool:
        return await self.probe(f"{self.base_url}/health")

    async def fetch_info(self) -> EngineInfo:
        """Context size, concurrency, version and model id from ``GET /info``."""
        data = await self.get_json(f"{self.base_url}/info")
        if not isinstance(data, dict):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered /info with {type(data).__name__}")
        info = self._info
        if isinstance(data.get("max_total_tokens"), int):
            info = replace(info, ctx_max=data["max_total_tokens"])
        if isinstance(data.get("max_concurrent_requests"), int):
            info = replace(info, slots=data["max_concurrent_requests"])
        if isinstance(data.get("version"), str):
            info = replace(info, version=data["version"])
        if isinstance(data.get("model_id"), str):
            self.model_id = data["model_id"]
        self._info = info
        return info

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        if not self.embeddings:
            raise self.unsupported(Workload.embedding)
        data = await self.post_json(f"{self.base_url}/embed", {"inputs": list(inputs)})
        # TEI answers bare vectors; give them the OpenAI shape the shared checker reads.
        items = [{"index": i, "embedding": v} for i, v in enumerate(data)] if isinstance(data, list) else None
        return parse_embeddings(self, {"data": items}, len(inputs))

    async def build_request(self, request: EngineRequest) -> tuple[str, dict[str, Any]]:
        if self.embeddings:
            raise self.unsupported(request.workload)
        if request.messages is not None:
            return f"{self.base_url}/v1/chat/completions", self._chat_payload(request)
        parameters: dict[str, Any] = {"max_new_tokens": request.max_tokens, "do_sample": request.temperature > 0}
        if request.temperature > 0:
            parameters["temperature"] = request.temperature
            if 0 < request.top_p < 1:
                parameters["top_p"] = request.top_p
            if request.top_k > 0:
                parameters["top_k"] = request.top_k
        if request.seed is not None:
            parameters["seed"] = request.seed
        if request.stop:
            parameters["stop"] = list(request.stop)
        return f"{self.base_url}/generate_stream", {"inputs": request.prompt, "parameters": parameters}

    def _chat_payload(self, request: EngineRequest) -> dict[str, Any]:
        assert request.messages is not None
        payload: dict[str, Any] = {
            "model": self.model_id or "tgi",
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "stream": True,
        }
        # The same sampling rules as /generate_stream: greedy unless a temperature is set.
        if request.temperature > 0:
            payload["temperature"] = request.temperature
            if 0 < request.top_p < 1:
                payload["top_p"] = request.top_p
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.stop:
            payload["stop"] = list(request.stop)
        return payload

    def parse_event(self, data: str, batch: list[str]) -> bool:
        if data.strip() == "[DONE]":
            return True
        event = self.json_object(data)
        if "error" in event:
            raise self._typed_error(event, status=None, headers={})
        if "choices" in event:
            return self._chat_chunk(event, data, batch)
        token = event.get("token")
        if not isinstance(token, dict) or not isinstance(token.get("text"), str):
            raise self.malformed(data)
        if token["text"] and not token.get("special"):
            batch.append(token["text"])
        return event.get("generated_text") is not None

    def _chat_chunk(self, event: dict[str, Any], data: str, batch: list[str]) -> bool:
        choices = event["choices"]
        if not isinstance(choices, list):
            raise self.malformed(data)
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                raise self.malformed(data)
            if isinstance(delta.get("content"), str) and delta["content"]:
                batch.append(delta["content"])
        return False

    def status_error(self, status: int, body: str, headers: Mapping[str, str]) -> EngineError:
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if isinstance(event, dict) and str(event.get("error_type")).lower() in _ERROR_TYPES:
            return self._typed_error(event, status=status, headers=headers)
        return super().status_error(status, body, headers)

    def _typed_error(self, event: dict[str, Any], *, status: int | None, headers: Mapping[str, str]) -> EngineError:
        error_type = event.get("error_type")
        code, retriable = _ERROR_TYPES.get(str(error_type).lower(), (ErrorCode.ENGINE_ERROR, False))
        retry_after = {
            ErrorCode.POOL_UNAVAILABLE: retry_after_ms(headers, DEFAULT_RETRY_AFTER_MS),
            ErrorCode.WORKER_RESET: DEFAULT_RETRY_AFTER_MS,
        }.get(code)
        where = f" ({status})" if status is not None else ""
        message = message_of(event) or json.dumps(event)[:200]
        return self.error(
            code,
            f"{self.engine_name} {error_type or 'error'}{where}: {message}",
            retriable=retriable,
            retry_after_ms=retry_after,
        )
