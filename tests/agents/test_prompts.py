"""Prompts within a context budget: the ranked repository map, never a silent cut."""

from __future__ import annotations

import pytest

from llama_orch.agents import (
    MAP_RULE,
    ContextBudgetError,
    PromptBuilder,
    Role,
    estimate_tokens,
    rank_files,
    repo_map,
)
from llama_orch.agents._context import file_section


def chars(text: str) -> int:
    """One token per character: makes budgets exact in tests."""
    return len(text)


FILES = {
    "src/auth/tokens.py": "def check(token):\n    # AUTH-0001: expired tokens\n    return token.exp > now()\n",
    "src/auth/__init__.py": "from .tokens import check\n",
    "docs/auth.md": "Tokens expire. See AUTH-0001.\n" * 3,
    "src/unrelated.py": "x = 1\n" * 50,
    "README.md": "# Project\n",
}


def test_estimate_is_four_bytes_per_token_rounded_up() -> None:
    assert [estimate_tokens(t) for t in ("", "abcd", "abcde", "é" * 2)] == [0, 1, 2, 1]


def test_ranking_by_ids_terms_paths_and_pins() -> None:
    ranked = rank_files(FILES, ["AUTH-0001", "auth", "token"])
    assert [f.path for f in ranked] == [
        "docs/auth.md", "src/auth/tokens.py", "src/auth/__init__.py", "README.md", "src/unrelated.py",
    ]  # fmt: skip
    assert [f.path for f in rank_files(FILES, ["AUTH-0001"], pinned=["README.md"])][:1] == ["README.md"]


def test_repo_map_includes_whole_files_in_rank_order_then_paths_then_drops() -> None:
    ranked = rank_files(FILES, ["AUTH-0001", "auth"])
    first = file_section(ranked[0].path, ranked[0].content)
    budget = len(first) + 1 + 60
    rmap = repo_map(ranked, budget, chars)
    assert rmap.included == (ranked[0].path,)
    assert rmap.included + rmap.listed + rmap.dropped == tuple(f.path for f in ranked)
    assert rmap.dropped  # 60 characters do not hold all four remaining paths
    assert len(rmap.text) <= budget
    assert ranked[0].content in rmap.text
    for path in rmap.listed:
        assert f"- {path}\n" in rmap.text
    for path in rmap.dropped:
        assert path not in rmap.text


def test_rank_order_is_kept_even_if_a_later_file_would_fit() -> None:
    files = {"a.py": "AUTH-0001 " * 100, "b.py": "AUTH-0001"}
    rmap = repo_map(rank_files(files, ["AUTH-0001"]), 200, chars)
    assert (rmap.included, rmap.listed) == ((), ("a.py", "b.py"))


def builder(ctx_max: int, **kw: object) -> PromptBuilder:
    return PromptBuilder(Role.CODER, "Make AUTH-0001 pass.", ctx_max=ctx_max, max_tokens=100, files=FILES,
                         terms=["AUTH-0001", "auth"], inputs={"Requirements": "- [AUTH-0001] MUST reject."},
                         estimate=chars, **kw)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize("ctx_max", [700, 800, 1000, 1300, 5000])
def test_prompt_fits_its_budget_and_records_what_was_left_out(ctx_max: int) -> None:
    prompt = builder(ctx_max).build(output_format="Edit blocks.")
    assert prompt.budget == ctx_max - 100
    assert prompt.tokens == len(prompt.text) <= prompt.budget
    assert set(prompt.included + prompt.listed + prompt.dropped) == set(FILES)
    assert MAP_RULE in prompt.text
    assert "- [AUTH-0001] MUST reject." in prompt.text
    for path in prompt.included:
        assert FILES[path] in prompt.text  # whole, never cut
    for path in prompt.dropped:
        assert path not in prompt.text


def test_small_budget_lists_more_and_large_budget_includes_all() -> None:
    small, large = builder(800).build(output_format="x"), builder(5000).build(output_format="x")
    assert len(small.included) < len(large.included) == len(FILES)
    assert large.listed == large.dropped == ()


def test_feedback_is_part_of_the_fixed_text_and_shrinks_the_map() -> None:
    b = builder(1100)
    plain = b.build(output_format="x")
    retry = b.build(output_format="x", feedback="block 1 (a.py): SEARCH text not found. " * 5)
    assert "## Your previous answer was refused" in retry.text
    assert len(retry.included) <= len(plain.included)
    assert retry.tokens <= retry.budget


def test_fixed_parts_over_budget_raise_instead_of_cutting() -> None:
    with pytest.raises(ContextBudgetError, match="over the budget of 200"):
        builder(300).build(output_format="x")


def test_every_role_has_a_template() -> None:
    for role in Role:
        prompt = PromptBuilder(role, "t", ctx_max=4096, max_tokens=512).build(output_format="x")
        assert prompt.text.startswith(f"# Role: {role.value}\n")


def test_an_answer_prefix_ends_the_prompt_for_a_completion_model_to_continue() -> None:
    prefix = "src/a.py\n<<<<<<< FILE\ndef check("
    b = builder(2000)
    b.answer_prefix = prefix
    built = b.build(output_format="x", feedback="the last one was wrong")
    assert built.text.endswith(f"## Answer\n\n{prefix}")
    assert built.text.index("## Your previous answer was refused") < built.text.index("## Answer")
    assert built.tokens <= built.budget
