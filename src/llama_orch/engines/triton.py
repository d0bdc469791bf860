"""Adapter for NVIDIA Triton Inference Server through its generate extension (KServe v2 HTTP).

Streaming uses ``POST /v2/models/{model}[/versions/{version}]/generate_stream``; each response is
an SSE event ``data: {"model_name": ..., "model_version": ..., "text_output": "..."}`` holding the
text decoded since the previous one, and the stream ends when Triton sends the final response and
ends the body (there is no end event). Closing the stream closes the connection, which cancels the
request in Triton and its backend.

The request's fields depend on the model behind ``model`` (the ``backend`` option):

- ``"tensorrtllm"``: TensorRT-LLM's ``ensemble`` model, whose inputs are top-level fields:
  ``text_input``, ``max_tokens``, ``stream``, ``bad_words``, ``stop_words``, ``random_seed``,
  ``temperature``, ``top_k``, ``top_p``. ``temperature == 0`` is sent as ``top_k: 1`` (greedy).
- ``"vllm"``: the vLLM backend, which takes ``text_input`` as its input and the sampling fields
  (``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``) with ``stream`` under
  ``parameters``; when streaming it excludes the prompt from the output and sends deltas.

``health()`` is true when ``/v2/health/ready`` and ``/v2/models/{model}/ready`` both answer 200;
``fetch_info()`` reads ``GET /v2`` (server version) and ``GET /v2/models/{model}`` (metadata, kept
as :attr:`TritonEngine.metadata`).

Error mapping (the one place engine failures become our taxonomy; the shared rows are implemented
in :mod:`llama_orch.engines._http`). Triton's error body is ``{"error": "..."}``:

=================================================  ====================  =========
engine failure                                     code                  retriable
=================================================  ====================  =========
connection refused / DNS / TLS                     POOL_UNAVAILABLE      yes
HTTP 503 (model not ready, queue full) or 429      POOL_UNAVAILABLE      yes, after ``Retry-After`` (else 1 s)
HTTP 4xx (unknown model, bad input)                ENGINE_ERROR          no
other HTTP 5xx                                     ENGINE_ERROR          yes
connection dropped mid-stream                      WORKER_RESET          yes
stream ended before a single response              WORKER_RESET          yes
``data: {"error": "..."}`` inside the stream       ENGINE_ERROR          no
malformed event (not JSON, no ``text_output``)     ENGINE_ERROR          no
a chat (``messages``) or embedding request         WORKLOAD_UNSUPPORTED  no
=================================================  ====================  =========
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, get_args
from urllib.parse import quote

from llama_orch.engines._base import EngineInfo, EngineRequest
from llama_orch.engines._http import BEST_EFFORT, HTTPEngine, message_of
from llama_orch.errors import ConfigError
from llama_orch_api import Determinism, ErrorCode

TritonBackend = Literal["tensorrtllm", "vllm"]


class TritonEngine(HTTPEngine):
    """One model on a Triton server at ``base_url``, served by the TensorRT-LLM or the vLLM backend.

    >>> engine = TritonEngine("http://gpu-box:8000", model="ensemble", backend="tensorrtllm")
    """

    name = "triton"
    end_marker = None

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        backend: TritonBackend = "tensorrtllm",
        model_version: str | None = None,
        engine_name: str = "triton",
        slots: int = 1,
        ctx_max: int = 4096,
        version: str = "unknown",
        determinism: frozenset[Determinism] = BEST_EFFORT,
        api_key_env: str | None = None,
    ) -> None:
        if backend not in get_args(TritonBackend):
            raise ConfigError(f"unknown Triton backend {backend!r}; expected one of {get_args(TritonBackend)}")
        if not model:
            raise ConfigError("TritonEngine needs the name of the model to call")
        super().__init__(
            base_url,
            engine_name=engine_name,
            slots=slots,
            ctx_max=ctx_max,
            version=version,
            determinism=determinism,
            api_key_env=api_key_env,
        )
        self.model = model
        self.backend = backend
        self.model_version = model_version
        self.metadata: dict[str, Any] | None = None
        path = f"/v2/models/{quote(model, safe='')}"
        if model_version is not None:
            path += f"/versions/{quote(model_version, safe='')}"
        self.model_url = f"{self.base_url}{path}"

    async def health(self) -> bool:
        return await self.probe(f"{self.base_url}/v2/health/ready") and await self.probe(f"{self.model_url}/ready")

    async def fetch_info(self) -> EngineInfo:
        """The server's version from ``GET /v2``; the model's metadata from ``GET /v2/models/{model}``."""
        server = await self.get_json(f"{self.base_url}/v2")
        metadata = await self.get_json(self.model_url)
        if not isinstance(metadata, dict):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered model metadata with a non-object")
        self.metadata = metadata
        if isinstance(server, dict) and isinstance(server.get("version"), str):
            self._info = replace(self._info, version=server["version"])
        return self._info

    async def build_request(self, request: EngineRequest) -> tuple[str, dict[str, Any]]:
        if request.messages is not None:
            # The generate extension takes text, and rendering a chat template is the model's
            # job, not ours: a chat pool needs an engine that applies its template.
            raise self.unsupported(request.workload)
        if self.backend == "vllm":
            parameters: dict[str, Any] = {
                "stream": True,
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "top_k": request.top_k if request.top_k > 0 else -1,
            }
            if request.seed is not None:
                parameters["seed"] = request.seed
            if request.stop:
                parameters["stop"] = list(request.stop)
            payload: dict[str, Any] = {"text_input": request.prompt, "parameters": parameters}
        else:
            payload = {
                "text_input": request.prompt,
                "max_tokens": request.max_tokens,
                "stream": True,
                "bad_words": "",
                "stop_words": list(request.stop) if request.stop else "",
            }
            if request.temperature > 0:
                payload.update(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k)
            else:
                payload["top_k"] = 1
            if request.seed is not None:
                payload["random_seed"] = request.seed
        return f"{self.model_url}/generate_stream", payload

    def parse_event(self, data: str, batch: list[str]) -> bool:
        event = self.json_object(data)
        if "error" in event:
            message = message_of(event) or str(event["error"])
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name}: {message}")
        text = event.get("text_output")
        if not isinstance(text, str):
            raise self.malformed(data)
        if text:
            batch.append(text)
        return False
