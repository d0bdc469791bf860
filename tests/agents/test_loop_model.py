"""The loop's model calls against a real orchestratord: budgets, records, cancellation on the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llama_orch.agents import AgentArtifacts, BudgetSpent, RunBudget
from llama_orch.agents._loop_model import CallContext, LoopModel
from llama_orch.agents._modelio import CompletionRequest
from llama_orch.client import AsyncClient
from llama_orch.engines.mock import MockSettings
from tests.conftest import Serve, fast_config


async def test_budget_reserves_shrinks_and_refuses() -> None:
    budget = RunBudget(tokens_limit=100)
    assert await budget.reserve(60, 0.0) == 60
    assert await budget.reserve(60, 0.0) == 40  # what is left
    await budget.settle(60, 10, 0.0)
    await budget.settle(40, 40, 0.0)
    assert budget.tokens_used == 50 and budget.tokens_left() == 50 and budget.tokens_reserved == 0
    with pytest.raises(BudgetSpent) as spent:
        await RunBudget(tokens_limit=10).reserve(100, 0.0)
    assert spent.value.dimension == "tokens"
    cost = RunBudget(cost_limit=1.0)
    assert await cost.reserve(1000, 0.01) == 100
    with pytest.raises(BudgetSpent, match="time"):
        await RunBudget(time_limit_s=1.0, elapsed_before_s=2.0).reserve(10, 0.0)
    spec = RunBudget(tokens_limit=100, tokens_used=30).server_spec()
    assert spec is not None and spec.tokens == 70
    assert RunBudget().server_spec() is None


async def test_a_waiting_call_gets_what_settles() -> None:
    budget = RunBudget(tokens_limit=100)
    assert await budget.reserve(100, 0.0) == 100
    waiter = asyncio.create_task(budget.reserve(50, 0.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # nothing left while the first call runs
    await budget.settle(100, 20, 0.0)
    assert await asyncio.wait_for(waiter, 5) == 50


async def test_calls_are_recorded_and_counted(serve: Serve, tmp_path: Path) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=None, first_token_ms=1, slots=2)))
    events: list[tuple[str, dict[str, object]]] = []
    async with AsyncClient(base) as client:
        caps = await client.capabilities()
        budget = RunBudget(tokens_limit=100)
        model = LoopModel(client, AgentArtifacts(client, tmp_path / "j", session_id="s-test"), budget, caps,
                          run_id="r1", session_id="s-test", record=lambda e, **f: events.append((e, f)))  # fmt: skip
        complete = model.completion(CallContext("a1", "code:X-0001", "coder", None, priority="interactive"))
        done = await complete(CompletionRequest("hello", 30, seed=7, sampler_profile_version="llorch/sampler@1"))
        assert done.tokens_out == 30 and budget.tokens_used == 30
        prompt_id, response_id = model.artifacts_of[done.task_id]
        prompt = await client.get_artifact(prompt_id)
        response = await client.get_artifact(response_id)
        assert response.parent == prompt_id and prompt.content["seed"] == 7  # type: ignore[index]
        assert "".join(response.content["tokens"]) == done.text  # type: ignore[index]
        assert response.content["engine"] == "mock"  # type: ignore[index]
        # The server holds the same budget: what is left (70) after this call.
        session = await client.get_session("s-test")
        assert session.budget is not None and session.budget.tokens_limit == 100
        # Shrunk to what is left, then refused.
        more = await complete(CompletionRequest("again", 100, seed=8, sampler_profile_version="llorch/sampler@1"))
        assert more.tokens_out == 70
        with pytest.raises(BudgetSpent):
            await complete(CompletionRequest("more", 100, seed=9, sampler_profile_version="llorch/sampler@1"))
        assert [e for e, _ in events].count("call-finished") == 2


async def test_a_cancelled_call_is_cancelled_on_the_server(serve: Serve, tmp_path: Path) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=1)))
    events: list[tuple[str, dict[str, object]]] = []
    async with AsyncClient(base) as client:
        caps = await client.capabilities()
        model = LoopModel(client, AgentArtifacts(client, tmp_path / "j"), RunBudget(), caps, run_id="r1",
                          session_id="s-cancel", record=lambda e, **f: events.append((e, f)))  # fmt: skip
        complete = model.completion(CallContext("a1", "code:X-0001", "coder", None))
        call = asyncio.create_task(complete(CompletionRequest("slow", 500, 1, "llorch/sampler@1")))
        for _ in range(200):
            sets = (await client.replicasets()).replicasets[0]
            if sets.slots_free == 0:
                break
            await asyncio.sleep(0.02)
        assert sets.slots_free == 0
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert ("call-cancelled", {"task_id": "a1-c1"}) in events
        sets = (await client.replicasets()).replicasets[0]
        assert sets.slots_free == sets.slots_total and sets.queue_depth == 0
        assert model.budget.tokens_reserved == 0


async def test_a_prefilled_call_is_cut_where_its_answer_is_complete(serve: Serve, tmp_path: Path) -> None:
    """The loop stops the engine once the answer is complete (client-side stop): the task is cancelled on
    the server, the budget is charged only what was generated, and the answer is the prefix, the
    generated text up to the cut and the closing text."""
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=50, first_token_ms=1, slots=1)))
    events: list[tuple[str, dict[str, object]]] = []
    async with AsyncClient(base) as client:
        caps = await client.capabilities()
        budget = RunBudget(tokens_limit=1000)
        model = LoopModel(client, AgentArtifacts(client, tmp_path / "j"), budget, caps, run_id="r1",
                          session_id="s-cut", record=lambda e, **f: events.append((e, f)))  # fmt: skip

        def cut(text: str) -> int | None:
            return 12 if len(text) > 20 else None

        ctx = CallContext("a1", "code:X-0001", "coder", None, prefix="PRE:", cut=cut, close=":END")
        request = CompletionRequest("go", 500, seed=3, sampler_profile_version="llorch/sampler@1")
        done = await model.completion(ctx)(request)
        assert done.text.startswith("PRE:") and done.text.endswith(":END") and len(done.text) == 4 + 12 + 4
        assert done.tokens_out < 500 and budget.tokens_used == done.tokens_out
        assert ("call-cancelled", {"task_id": "a1-c1"}) in events
        response = await client.get_artifact(model.artifacts_of[done.task_id][1])
        assert response.content["cut_at"] == 12 and response.content["prefix"] == "PRE:"  # type: ignore[index]
        assert done.text[4:-4] == response.content["response"][:12]  # type: ignore[index]
        sets = (await client.replicasets()).replicasets[0]
        assert sets.slots_free == sets.slots_total
