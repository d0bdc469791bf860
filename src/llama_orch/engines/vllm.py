"""Adapter for vLLM's OpenAI-compatible server (``vllm serve``).

``base_url`` is the server root (``http://host:8000``; a trailing ``/v1`` is dropped). Streaming
uses ``POST /v1/completions`` with ``"stream": true`` and the sampling fields ``seed``,
``temperature``, ``top_p``, ``top_k`` and ``max_tokens``; events are
``data: {"choices": [{"text": ..., "finish_reason": null | "stop" | "length"}]}``, a usage-only
event may follow (``"choices": []``), and ``data: [DONE]`` ends the stream. Sampling fields are
always sent, ``top_k=-1`` when disabled, so the model's ``generation_config.json`` defaults,
which vLLM applies to fields a request leaves out, never change a seeded run. Closing the stream
closes the connection, which aborts the request in vLLM. With ``stream_usage=True`` (the registry's
default for vLLM pools) ``stream_options.include_usage`` is sent, so the last chunk's ``usage``
(prompt, completion and cached prompt tokens) reaches ``request.report``.

Chat (a request with ``messages``) uses ``POST /v1/chat/completions``, rendered by the model's chat
template in vLLM; embeddings (``embeddings=True``, a server running a pooling model) use
``POST /v1/embeddings``, as in :mod:`llama_orch.engines.openai`.

``GET /health`` answers 200 when the engine is alive; ``fetch_info()`` reads ``GET /v1/models``
(model id, ``max_model_len``) and ``GET /version``.

Error mapping (the one place engine failures become our taxonomy; the rows shared with every OpenAI-
compatible server are in :mod:`llama_orch.engines.openai`, the HTTP ones in
:mod:`llama_orch.engines._http`):

=================================================  ====================  =========
engine failure                                     code                  retriable
=================================================  ====================  =========
connection refused / DNS / TLS                     POOL_UNAVAILABLE      yes
HTTP 503 (engine loading, sleeping) or 429         POOL_UNAVAILABLE      yes, after ``Retry-After`` (else 1 s)
HTTP 401 (``--api-key`` set, key wrong)            ENGINE_ERROR          no
HTTP 400 ``BadRequestError``, other 4xx            ENGINE_ERROR          no
HTTP 5xx (other than 503)                          ENGINE_ERROR          yes
connection dropped mid-stream                      WORKER_RESET          yes
stream ended without ``data: [DONE]``              WORKER_RESET          yes
``data: {"error": {...}}`` inside the stream       ENGINE_ERROR          no
malformed event (not JSON, no ``choices``)         ENGINE_ERROR          no
=================================================  ====================  =========

vLLM's error body is ``{"object": "error", "message": ..., "type": "BadRequestError", "code": 400}``
(newer releases nest it: ``{"error": {"message": ..., "type": ..., "code": ...}}``); the message
is carried into ours either way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llama_orch.engines._base import EngineInfo, EngineRequest
from llama_orch.engines._http import BEST_EFFORT
from llama_orch.engines.openai import OpenAIEngine
from llama_orch_api import Determinism


class VLLMEngine(OpenAIEngine):
    """One ``vllm serve`` replica at ``base_url`` (the server root).

    ``model`` is the served model name; ``None`` asks ``/v1/models`` once and uses the first one.

    >>> engine = VLLMEngine("http://gpu-box:8000", model="google/gemma-3-270m")
    """

    name = "vllm"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key_env: str | None = None,
        embeddings: bool = False,
        stream_usage: bool = False,
        engine_name: str = "vllm",
        slots: int = 1,
        ctx_max: int = 4096,
        version: str = "unknown",
        determinism: frozenset[Determinism] = BEST_EFFORT,
    ) -> None:
        root = base_url.rstrip("/")
        root = root.removesuffix("/v1")
        super().__init__(
            f"{root}/v1",
            model=model,
            api_key_env=api_key_env,
            embeddings=embeddings,
            stream_usage=stream_usage,
            engine_name=engine_name,
            slots=slots,
            ctx_max=ctx_max,
            version=version,
            determinism=determinism,
        )
        self.server_url = root

    async def health(self) -> bool:
        return await self.probe(f"{self.server_url}/health")

    async def fetch_info(self) -> EngineInfo:
        """Model and context size from ``/v1/models``, the release from ``/version``."""
        await super().fetch_info()
        data = await self.get_json(f"{self.server_url}/version")
        if isinstance(data, dict) and isinstance(data.get("version"), str):
            self._info = replace(self._info, version=data["version"])
        return self._info

    def payload(self, request: EngineRequest, model: str) -> dict[str, Any]:
        payload = super().payload(request, model)
        payload["top_k"] = request.top_k if request.top_k > 0 else -1
        return payload
