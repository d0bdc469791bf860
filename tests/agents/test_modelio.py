"""Model calls: through the SDK against a real orchestratord on loopback, and parse-retry behaviour
through the explicit completion seam (the mock engine's answers are deterministic word salad)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import BaseModel

from llama_orch.agents import (
    Completion,
    CompletionFn,
    CompletionRequest,
    EditBlocksFormat,
    JsonFormat,
    ModelOutputError,
    PromptBuilder,
    Role,
    TextFormat,
    call_model,
    ctx_max_for,
    sdk_completion,
)
from llama_orch.client import AsyncClient
from llama_orch.engines.mock import MockSettings
from tests.conftest import Serve, fast_config

FILES = {f"src/mod_{i}.py": f"# module {i} for AUTH-0001\n" + "value = 1\n" * 40 for i in range(30)}


class Plan(BaseModel):
    steps: list[str]
    requirement: str


def scripted(answers: list[str]) -> tuple[list[CompletionRequest], CompletionFn]:
    """A completion function that answers from a script and records what it was asked."""
    seen: list[CompletionRequest] = []

    async def complete(request: CompletionRequest) -> Completion:
        seen.append(request)
        return Completion(answers[len(seen) - 1], f"fake-{len(seen)}", 10, "stop")

    return seen, complete


async def test_call_through_the_sdk_on_a_real_orchestratord(serve: Serve) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=None, first_token_ms=0, slots=2, ctx_max=1024),
                                   max_tokens=64))  # fmt: skip
    async with AsyncClient(base) as client:
        caps = await client.capabilities()
        ctx_max = ctx_max_for(caps, "default")
        assert ctx_max == 1024
        builder = PromptBuilder(Role.CODER, "Make AUTH-0001 pass.", ctx_max=ctx_max, max_tokens=64, files=FILES,
                                terms=["AUTH-0001"])  # fmt: skip
        complete = sdk_completion(client)
        first = await call_model(
            builder, TextFormat(), complete, seed=7, sampler_profile_version="llorch/sampler@1", pool="default"
        )
        again = await call_model(builder, TextFormat(), complete, seed=7, pool="default")
        other = await call_model(builder, TextFormat(), complete, seed=8, pool="default")
    prompt = first.attempts[0].prompt
    # The budget was tight: the map was trimmed by the rule, and the server admitted the prompt.
    assert prompt.listed and prompt.included
    assert prompt.tokens <= prompt.budget == 1024 - 64
    assert (first.seed, first.sampler_profile_version) == (7, "llorch/sampler@1")
    assert first.attempts[0].request.seed == 7
    assert first.completion.tokens_out == 64
    assert first.completion.task_id and first.completion.task_id != again.completion.task_id
    assert first.value == again.value != other.value  # deterministic per seed


async def test_malformed_answers_over_http_are_retried_with_the_error_then_fail(serve: Serve) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=None, first_token_ms=0, slots=2)))
    async with AsyncClient(base) as client:
        builder = PromptBuilder(Role.REVIEWER, "Plan the work.", ctx_max=8192, max_tokens=32)
        with pytest.raises(ModelOutputError, match="no usable answer after 3 attempts") as info:
            await call_model(builder, JsonFormat(Plan), sdk_completion(client), seed=3)
    attempts = info.value.attempts
    assert len(attempts) == 3
    assert len({a.completion.task_id for a in attempts}) == 3
    assert all(a.error and "JSON" in a.error for a in attempts)
    assert "refused" not in attempts[0].prompt.text
    for before, after in itertools.pairwise(attempts):
        assert before.error is not None
        assert before.error in after.prompt.text
        assert before.completion.text.strip()[:50] in after.prompt.text


async def test_retry_prompt_carries_the_parse_error_and_the_second_answer_is_used() -> None:
    seen, complete = scripted(
        ['{"steps": ["a",]}', '```json\n{"steps": ["write test"], "requirement": "AUTH-0001"}\n```']
    )
    builder = PromptBuilder(Role.SPEC_WRITER, "Plan.", ctx_max=4096, max_tokens=256)
    result = await call_model(builder, JsonFormat(Plan), complete, seed=11, sampler_profile_version="p@2")
    assert result.value == Plan(steps=["write test"], requirement="AUTH-0001")
    assert [a.error is None for a in result.attempts] == [False, True]
    assert "not valid JSON" in seen[1].prompt
    assert '{"steps": ["a",]}' in seen[1].prompt
    assert [(r.seed, r.sampler_profile_version, r.max_tokens) for r in seen] == [(11, "p@2", 256)] * 2


async def test_schema_errors_name_the_fields() -> None:
    _, complete = scripted(['{"steps": "one"}', '{"steps": [], "requirement": "X-0001"}'])
    builder = PromptBuilder(Role.CODER, "Plan.", ctx_max=4096, max_tokens=256)
    result = await call_model(builder, JsonFormat(Plan), complete, seed=1)
    assert result.attempts[0].error is not None
    assert "steps: Input should be a valid list" in result.attempts[0].error
    assert "requirement: Field required" in result.attempts[0].error
    assert result.value.steps == []


async def test_edit_answers_are_checked_against_the_workspace_and_fed_back(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def f():\n    return 1\n")
    bad = "app.py\n<<<<<<< SEARCH\ndef f():\n    return 2\n=======\ndef f():\n    return 3\n>>>>>>> REPLACE\n"
    good = bad.replace("return 2", "return 1")
    seen, complete = scripted([bad, good])
    builder = PromptBuilder(Role.CODER, "Return 3.", ctx_max=4096, max_tokens=256,
                            files={"app.py": (tmp_path / "app.py").read_text()})  # fmt: skip
    result = await call_model(builder, EditBlocksFormat(tmp_path), complete, seed=5)
    assert "block 1 (app.py): SEARCH text not found" in seen[1].prompt
    assert "First difference: SEARCH line 2 is '    return 2', file line 2 is '    return 1'" in seen[1].prompt
    assert (tmp_path / "app.py").read_text() == "def f():\n    return 1\n"  # planned, not written
    assert [c.path for c in result.value.changes] == ["app.py"]


async def test_long_refused_answers_are_echoed_in_part_and_say_so() -> None:
    seen, complete = scripted(["x" * 5000, "y"])
    builder = PromptBuilder(Role.CODER, "t", ctx_max=8192, max_tokens=256)
    with pytest.raises(ModelOutputError):
        await call_model(builder, JsonFormat(Plan), complete, seed=1, max_attempts=2)
    assert "its first 1000 of 5000 characters" in seen[1].prompt
    assert "x" * 1001 not in seen[1].prompt
