"""The issue's acceptance on the real engine: the embedded default's two models (Gemma 3 270M and
SmolLM2-135M-Instruct, each a managed llama-server) answer OpenAI's own SDK pointed at
orchestratord, for completions and chat, streaming, with seeded output identical across two calls."""

from __future__ import annotations

import openai
import pytest

from llama_orch.server.config import EMBEDDED_CHAT_MODEL_REF, EMBEDDED_MODEL_REF, embedded_default
from tests._engine import gemma_model, smollm2_model
from tests.conftest import Serve

pytestmark = pytest.mark.real_engine

MODELS = (EMBEDDED_MODEL_REF, EMBEDDED_CHAT_MODEL_REF)


async def test_the_embedded_default_answers_the_openai_sdk(serve: Serve) -> None:
    gemma_model(), smollm2_model()  # skip (CI: fail) without the engine and the models
    config = embedded_default()
    for pool in config.pools:  # smaller than the default, to start quickly on a shared test machine
        pool.slots, pool.ctx_max, pool.threads = 1, 1024, 1
    base = await serve(config)
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=120)
    try:
        assert sorted(m.id for m in (await client.models.list()).data) == sorted(MODELS)
        for model in MODELS:
            texts = []
            for _ in range(2):
                stream = await client.completions.create(
                    model=model, prompt="The capital of France is", max_tokens=6, seed=7, stream=True
                )
                texts.append("".join([c.choices[0].text async for c in stream if c.choices]))
            assert texts[0] == texts[1] and texts[0], model
            chats = []
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "Name one colour."}],
                    max_tokens=8,
                    seed=7,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                chunks = [c async for c in stream]
                usage = chunks[-1].usage
                assert usage is not None and usage.prompt_tokens > 0  # the engine counted the rendered template
                chats.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
            assert chats[0] == chats[1] and chats[0], model
    finally:
        await client.close()
