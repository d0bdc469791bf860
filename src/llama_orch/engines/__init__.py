"""Engine adapters behind one small async interface, and the mock engine."""

from __future__ import annotations

from llama_orch.engines._base import (
    ChangeHook,
    ChatMessage,
    Embeddings,
    Engine,
    EngineInfo,
    EngineRequest,
    EngineState,
    StreamReport,
)
from llama_orch.engines._http import EngineTimeouts
from llama_orch.engines._registry import (
    ENGINES,
    EngineKind,
    EngineName,
    HTTPEngineSettings,
    LlamaCppSettings,
    OpenAISettings,
    ReplicaFacts,
    TGISettings,
    TimeoutSettings,
    TritonSettings,
    VLLMSettings,
    build_engine,
    engine_kind,
    parse_settings,
)
from llama_orch.engines.llamacpp import LlamaCppEngine
from llama_orch.engines.mock import MockEngine, MockFaults, MockSettings, mock_embedding, mock_tokens
from llama_orch.engines.openai import OpenAIEngine
from llama_orch.engines.tgi import TGIEngine
from llama_orch.engines.triton import TritonBackend, TritonEngine
from llama_orch.engines.vllm import VLLMEngine

__all__ = [
    "ENGINES",
    "ChangeHook",
    "ChatMessage",
    "Embeddings",
    "Engine",
    "EngineInfo",
    "EngineKind",
    "EngineName",
    "EngineRequest",
    "EngineState",
    "EngineTimeouts",
    "HTTPEngineSettings",
    "LlamaCppEngine",
    "LlamaCppSettings",
    "MockEngine",
    "MockFaults",
    "MockSettings",
    "OpenAIEngine",
    "OpenAISettings",
    "ReplicaFacts",
    "StreamReport",
    "TGIEngine",
    "TGISettings",
    "TimeoutSettings",
    "TritonBackend",
    "TritonEngine",
    "TritonSettings",
    "VLLMEngine",
    "VLLMSettings",
    "build_engine",
    "engine_kind",
    "mock_embedding",
    "mock_tokens",
    "parse_settings",
]
