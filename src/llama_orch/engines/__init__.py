"""Engine adapters behind one small async interface, and the mock engine."""

from __future__ import annotations

from llama_orch.engines._base import ChangeHook, Engine, EngineInfo, EngineRequest, EngineState
from llama_orch.engines.llamacpp import LlamaCppEngine
from llama_orch.engines.mock import MockEngine, MockFaults, MockSettings, mock_tokens
from llama_orch.engines.openai import OpenAIEngine
from llama_orch.engines.tgi import TGIEngine
from llama_orch.engines.triton import TritonBackend, TritonEngine
from llama_orch.engines.vllm import VLLMEngine

__all__ = [
    "ChangeHook",
    "Engine",
    "EngineInfo",
    "EngineRequest",
    "EngineState",
    "LlamaCppEngine",
    "MockEngine",
    "MockFaults",
    "MockSettings",
    "OpenAIEngine",
    "TGIEngine",
    "TritonBackend",
    "TritonEngine",
    "VLLMEngine",
    "mock_tokens",
]
