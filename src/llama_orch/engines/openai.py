"""Adapter for any OpenAI-compatible server: Ollama, LM Studio, llama.cpp's ``/v1``, a hosted API.

``base_url`` is the API base as OpenAI's own SDK takes it, ``/v1`` included
(``http://localhost:11434/v1`` for Ollama). Streaming uses ``POST {base}/completions`` with
``"stream": true``; a chat request (one with ``messages``) uses ``POST {base}/chat/completions``
with those messages, which the server renders with its model's chat template (``chat=True`` sends a
plain prompt as one user message, for servers that only offer chat). Events are
``data: {"choices": [{"text": ...}]}`` (chat: ``"delta": {"content": ...}``), each choice's last
carries ``finish_reason``, and the stream ends with ``data: [DONE]``; with ``stream_usage=True``
``stream_options.include_usage`` asks for a last ``usage`` chunk (``"choices": []``), copied into
``request.report``. Closing the stream closes the connection, which is how these servers cancel a
completion.

Embeddings: ``POST {base}/embeddings`` with ``input`` (a list) and ``encoding_format: "float"``;
``data[i].embedding`` in ``data[i].index`` order, ``usage.prompt_tokens``. Offered when the adapter is
built with ``embeddings=True`` (the model is an embedding model: then it serves only embeddings).

The API key is read from the environment variable named by ``api_key_env`` when the adapter starts
and sent as ``Authorization: Bearer ...``; it is never logged and is masked in any error text an
engine echoes back.

Error mapping (the one place engine failures become our taxonomy; the shared rows are implemented
in :mod:`llama_orch.engines._http`):

===========================================  ====================  =========
engine failure                               code                  retriable
===========================================  ====================  =========
connection refused / DNS / TLS               POOL_UNAVAILABLE      yes
HTTP 429 (rate limit) or 503                 POOL_UNAVAILABLE      yes, after ``Retry-After`` [1]_
HTTP 429 with code ``insufficient_quota``    ENGINE_ERROR          no
HTTP 401 or 403 ("authentication failed")    ENGINE_ERROR          no
other HTTP 4xx                               ENGINE_ERROR          no
other HTTP 5xx                               ENGINE_ERROR          yes
connection dropped mid-stream                WORKER_RESET          yes
stream ended without ``data: [DONE]``        WORKER_RESET          yes
``{"error": ...}`` event inside the stream   ENGINE_ERROR          no
malformed event (not JSON, no ``choices``)   ENGINE_ERROR          no
no model given and ``/models`` lists none    ENGINE_ERROR          no
``fetch_info``: the model is not listed      ENGINE_ERROR          no
embeddings: not one vector per input         ENGINE_ERROR          no
a workload the adapter was not built for     WORKLOAD_UNSUPPORTED  no
===========================================  ====================  =========

.. [1] ``retry_after_ms`` is read from ``retry-after-ms`` or ``Retry-After`` (by the reader the SDK shares,
   :func:`llama_orch._wire.retry_after_ms`); 1 s when neither holds a valid value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from llama_orch.engines._base import TEXT_WORKLOADS, Embeddings, EngineInfo, EngineRequest, StreamReport
from llama_orch.engines._http import BEST_EFFORT, HTTPEngine, error_message, message_of
from llama_orch.errors import EngineError
from llama_orch_api import Determinism, ErrorCode, Workload


class OpenAIEngine(HTTPEngine):
    """One OpenAI-compatible server at ``base_url`` (the API base, ``/v1`` included).

    ``model`` is the model to request; ``None`` asks ``GET {base}/models`` once and uses the first
    one listed. ``send_top_k`` adds ``top_k`` to requests, for servers that accept it (OpenAI's own
    API rejects it).

    >>> engine = OpenAIEngine("http://localhost:11434/v1", model="gemma3:270m")
    """

    name = "openai"
    end_marker = "data: [DONE]"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key_env: str | None = None,
        chat: bool = False,
        send_top_k: bool = False,
        embeddings: bool = False,
        stream_usage: bool = False,
        engine_name: str = "openai",
        slots: int = 1,
        ctx_max: int = 4096,
        version: str = "unknown",
        determinism: frozenset[Determinism] = BEST_EFFORT,
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
        self.model = model
        self.chat = chat
        self.send_top_k = send_top_k
        self.embeddings = embeddings
        self.stream_usage = stream_usage
        self._info = replace(self._info, workloads=frozenset({Workload.embedding}) if embeddings else TEXT_WORKLOADS)

    async def health(self) -> bool:
        return await self.probe(f"{self.base_url}/models")

    async def served_models(self) -> list[dict[str, Any]]:
        """``GET {base}/models``: the model cards the server lists."""
        data = await self.get_json(f"{self.base_url}/models")
        cards = data.get("data") if isinstance(data, dict) else None
        if not isinstance(cards, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cards):
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} answered /models with an unexpected body")
        return cards

    async def fetch_info(self) -> EngineInfo:
        """Check that the model is served (choosing one when none was given) and adopt its
        ``max_model_len`` as the context size where the server lists it (vLLM, SGLang)."""
        cards = await self.served_models()
        ids = [card["id"] for card in cards]
        if self.model is None and ids:
            self.model = ids[0]
        card = next((c for c in cards if c["id"] == self.model), None)
        if card is None:
            raise self.error(
                ErrorCode.ENGINE_ERROR, f"{self.engine_name} does not serve model {self.model!r}; it serves {ids}"
            )
        if isinstance(card.get("max_model_len"), int):
            self._info = replace(self._info, ctx_max=card["max_model_len"])
        return self._info

    async def _model(self) -> str:
        if self.model is None:
            ids = [card["id"] for card in await self.served_models()]
            if not ids:
                raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name} serves no model")
            self.model = ids[0]
        return self.model

    def payload(self, request: EngineRequest, model: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "stream": True,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.messages is not None:
            payload["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        elif self.chat:
            payload["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            payload["prompt"] = request.prompt
        if request.seed is not None:
            payload["seed"] = request.seed
        if self.send_top_k and request.top_k > 0:
            payload["top_k"] = request.top_k
        if request.stop:
            payload["stop"] = list(request.stop)
        if self.stream_usage:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def is_chat(self, request: EngineRequest) -> bool:
        return request.messages is not None or self.chat

    async def build_request(self, request: EngineRequest) -> tuple[str, dict[str, Any]]:
        path = "/chat/completions" if self.is_chat(request) else "/completions"
        return f"{self.base_url}{path}", self.payload(request, await self._model())

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        if not self.embeddings:
            raise self.unsupported(Workload.embedding)
        payload = embeddings_payload(inputs, await self._model())
        return parse_embeddings(self, await self.post_json(f"{self.base_url}/embeddings", payload), len(inputs))

    def parse_event(self, data: str, batch: list[str]) -> bool:
        return self.parse_for(None, data, batch)

    def parse_for(self, request: EngineRequest | None, data: str, batch: list[str]) -> bool:
        if data.strip() == "[DONE]":
            return True
        event = self.json_object(data)
        if "error" in event or event.get("object") == "error":
            message = message_of(event) or json.dumps(event)[:200]
            raise self.error(ErrorCode.ENGINE_ERROR, f"{self.engine_name}: {message}")
        choices = event.get("choices")
        if not isinstance(choices, list):
            raise self.malformed(data)
        report = request.report if request is not None else None
        for choice in choices:
            try:
                text = _text_of(choice)
            except TypeError as exc:
                raise self.malformed(data) from exc
            if text:
                batch.append(text)
            if report is not None and isinstance(choice, dict) and choice.get("finish_reason") is not None:
                report.finish_reason = "length" if choice["finish_reason"] == "length" else "stop"
        if report is not None and isinstance(event.get("usage"), dict):
            _copy_usage(report, event["usage"])
        return False

    def status_error(self, status: int, body: str, headers: Mapping[str, str]) -> EngineError:
        if status == 429 and _error_code(body) == "insufficient_quota":
            # A 429 that waiting does not cure: the account is out of credit.
            return self.error(
                ErrorCode.ENGINE_ERROR, f"{self.engine_name}: quota exhausted (429): {error_message(body)}"
            )
        return super().status_error(status, body, headers)


def _text_of(choice: object) -> str | None:
    """The text of one choice: ``text`` for completions, ``delta.content`` for chat."""
    if not isinstance(choice, dict):
        raise TypeError("a choice is not an object")
    if "delta" in choice:
        delta = choice["delta"] or {}
        if not isinstance(delta, dict):
            raise TypeError("delta is not an object")
        text = delta.get("content")
    else:
        text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise TypeError("text is not a string")
    return text


def _copy_usage(report: StreamReport, usage: dict[str, Any]) -> None:
    if isinstance(usage.get("prompt_tokens"), int):
        report.prompt_tokens = usage["prompt_tokens"]
    if isinstance(usage.get("completion_tokens"), int):
        report.completion_tokens = usage["completion_tokens"]
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        report.cached_tokens = details["cached_tokens"]


def embeddings_payload(inputs: Sequence[str], model: str | None) -> dict[str, Any]:
    """The body of an OpenAI-style ``/embeddings`` request for ``inputs``."""
    payload: dict[str, Any] = {"input": list(inputs), "encoding_format": "float"}
    if model is not None:
        payload["model"] = model
    return payload


def parse_embeddings(engine: HTTPEngine, data: object, expected: int) -> Embeddings:
    """The vectors of an OpenAI-style ``/embeddings`` answer, in input order, checked."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        got = len(items) if isinstance(items, list) else "no"
        raise engine.error(
            ErrorCode.ENGINE_ERROR, f"{engine.engine_name} answered {got} embeddings for {expected} inputs"
        )
    vectors: list[list[float] | None] = [None] * expected
    for position, item in enumerate(items):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not (isinstance(index, int) and 0 <= index < expected and vectors[index] is None):
            raise engine.error(ErrorCode.ENGINE_ERROR, f"{engine.engine_name} answered embeddings with bad indexes")
        vectors[index] = _vector(engine, vector)
    assert isinstance(data, dict)
    usage = data.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    model = data.get("model")
    return Embeddings(
        [v for v in vectors if v is not None],
        tokens if isinstance(tokens, int) else 0,
        model if isinstance(model, str) else None,
    )


def _vector(engine: HTTPEngine, vector: object) -> list[float]:
    if (
        isinstance(vector, list)
        and vector
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in vector)
    ):
        return [float(x) for x in vector]
    raise engine.error(ErrorCode.ENGINE_ERROR, f"{engine.engine_name} answered an embedding that is not a vector")


def _error_code(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None
    code = err.get("code") or err.get("type")
    return code if isinstance(code, str) else None
