"""LlamaCppEngine's workloads against a real ``llama-server`` on the embedded SmolLM2-135M-Instruct: chat
rendered by the model's own template, KV reuse on a pinned slot, embeddings, stop texts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from llama_orch.engines import ChatMessage, EngineRequest, LlamaCppEngine, StreamReport
from llama_orch.pools._supervisor import LaunchSpec, ReplicaSupervisor, RestartBackoff
from tests._engine import SMOLLM2_REF, llama_server, smollm2_model

pytestmark = pytest.mark.real_engine

SYSTEM = ChatMessage("system", "You are a terse assistant.")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[LlamaCppEngine]:
    spec = LaunchSpec(
        binary=llama_server(),
        model=smollm2_model(),
        model_ref=SMOLLM2_REF,
        slots=2,
        ctx_per_slot=1024,
        threads=1,
        gpu_layers=0,
        env={"CUDA_VISIBLE_DEVICES": ""},
        # One process serves chat and embeddings (mean pooling over the last hidden states).
        extra_args=("--embeddings", "--pooling", "mean"),
    )
    sup = ReplicaSupervisor("test/smollm2", spec, backoff=RestartBackoff(max_restarts=0), ready_timeout_s=120)
    try:
        assert await sup.start(), sup.last_error
        assert sup.port is not None
        adapter = LlamaCppEngine(f"http://127.0.0.1:{sup.port}", slots=2, ctx_max=1024, embeddings=True)
        async with adapter:
            yield adapter
    finally:
        await sup.stop()


def turn(*messages: ChatMessage, max_tokens: int = 8, **kw: object) -> EngineRequest:
    return EngineRequest(
        "t",
        "",
        max_tokens,
        seed=42,
        messages=(SYSTEM, *messages),
        report=StreamReport(),
        **kw,  # type: ignore[arg-type]
    )


async def text(engine: LlamaCppEngine, request: EngineRequest) -> str:
    return "".join([t async for batch in engine.stream(request) for t in batch])


@pytest.mark.asyncio(loop_scope="module")
async def test_chat_is_rendered_by_the_models_own_template(engine: LlamaCppEngine) -> None:
    messages = (SYSTEM, ChatMessage("user", "What is 2+2?"))
    rendered = await engine.apply_template(messages)
    # SmolLM2's ChatML template, from the GGUF: nothing of ours joined these strings.
    assert rendered.startswith("<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\n")
    assert rendered.endswith("<|im_start|>assistant\n")
    request = turn(ChatMessage("user", "What is 2+2?"), cache_prompt=False)
    answer = await text(engine, request)
    assert answer.strip()
    assert request.report is not None and request.report.completion_tokens is not None
    # The engine counted the rendered template's tokens as the prompt.
    assert request.report.prompt_tokens == len(await engine.tokenize(rendered))


@pytest.mark.asyncio(loop_scope="module")
async def test_seeded_chat_twice_gives_the_same_text(engine: LlamaCppEngine) -> None:
    question = ChatMessage("user", "Name a colour.")
    first = await text(engine, turn(question, cache_prompt=False, max_tokens=12))
    second = await text(engine, turn(question, cache_prompt=False, max_tokens=12))
    assert first == second and first


@pytest.mark.asyncio(loop_scope="module")
async def test_second_turn_on_the_same_slot_reuses_the_cache(engine: LlamaCppEngine) -> None:
    first = turn(ChatMessage("user", "Say hello."), slot=1)
    reply = await text(engine, first)
    second = turn(
        ChatMessage("user", "Say hello."), ChatMessage("assistant", reply), ChatMessage("user", "Again."), slot=1
    )
    await text(engine, second)
    assert first.report is not None and second.report is not None
    assert first.report.prompt_tokens is not None and second.report.cached_tokens is not None
    # Everything the first turn evaluated (its prompt, at least) was warm for the second.
    assert second.report.cached_tokens >= first.report.prompt_tokens
    assert second.report.prompt_tokens is not None and second.report.prompt_tokens > second.report.cached_tokens
    cold = turn(ChatMessage("user", "Say hello."), slot=1, cache_prompt=False)
    await text(engine, cold)
    assert cold.report is not None and cold.report.cached_tokens == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_stop_text_ends_the_completion(engine: LlamaCppEngine) -> None:
    request = EngineRequest("t", "1, 2, 3, 4, 5, 6,", 24, seed=1, stop=(",",), report=StreamReport())
    out = await text(engine, request)
    assert "," not in out
    assert request.report is not None and request.report.finish_reason == "stop"


@pytest.mark.asyncio(loop_scope="module")
async def test_embeddings_are_vectors_of_the_models_width(engine: LlamaCppEngine) -> None:
    result = await engine.embed(["the cat sat", "quantum chromodynamics", "the cat sat"])
    assert [len(v) for v in result.vectors] == [576, 576, 576]  # SmolLM2-135M's hidden size
    assert result.vectors[0] != result.vectors[1]
    assert max(abs(a - b) for a, b in zip(result.vectors[0], result.vectors[2], strict=True)) < 1e-4
    assert result.prompt_tokens > 0
