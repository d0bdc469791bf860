"""Prompts per role, built from templates within a context budget.

A prompt is, in order: the role's instructions, the task, the inputs (requirements, contracts...),
the output format, the repository context (a ranked map, see :mod:`._context`), on a retry the
reason the previous answer was refused, and, when an ``answer_prefix`` is given, the start of the
answer for a completion model to continue. Everything but the repository context is kept whole;
if that alone exceeds the budget, :class:`ContextBudgetError` is raised rather than cutting it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from llama_orch.agents._context import (
    MAP_RULE,
    ContextBudgetError,
    TokenEstimator,
    estimate_tokens,
    rank_files,
    repo_map,
)


class Role(StrEnum):
    SPEC_WRITER = "spec-writer"
    CONTRACT_WRITER = "contract-writer"
    TEST_WRITER = "test-writer"
    CODER = "coder"
    REVIEWER = "reviewer"


ROLE_INSTRUCTIONS: dict[Role, str] = {
    Role.SPEC_WRITER: (
        "You write specifications in Markdown. Every requirement is one list item that starts with its "
        "stable id in brackets and states one RFC 2119 keyword (MUST, SHOULD, MAY...), e.g. "
        "'- [AUTH-0001] The service MUST reject expired tokens.' Never reuse or renumber an existing id; "
        "new requirements take new ids."
    ),
    Role.CONTRACT_WRITER: (
        "You write API contracts (OpenAPI 3.1, JSON Schema, Pact) for the requirements given. Every "
        "operation or schema that satisfies a requirement carries its id in 'x-req-id'."
    ),
    Role.TEST_WRITER: (
        "You write tests for the requirements given, one or more per requirement, each marked with "
        '@pytest.mark.req("<id>") (or tagged @<id> in Gherkin). Tests must be able to fail.'
    ),
    Role.CODER: (
        "You change the code so that the tests and contracts for the requirements given pass. Change "
        "only what the task needs; keep the existing style."
    ),
    Role.REVIEWER: (
        "You review a proposed change against the requirements given: say whether each one is met, "
        "and name concrete defects with file and line."
    ),
}


@dataclass(frozen=True)
class Prompt:
    """A built prompt and the record of how it was fitted into its budget."""

    role: Role
    text: str
    tokens: int
    """Estimated tokens of ``text``."""
    budget: int
    """``ctx_max - max_tokens``: what the prompt may take."""
    included: tuple[str, ...]
    """Repository files included whole."""
    listed: tuple[str, ...]
    """Files named by path only."""
    dropped: tuple[str, ...]
    """Files left out entirely (not even their path fitted)."""
    rule: str = MAP_RULE


@dataclass
class PromptBuilder:
    """Builds the prompts of one model call (the first and its retries) for ``role``.

    >>> builder = PromptBuilder(Role.CODER, "Make AUTH-0001 pass.", ctx_max=8192, max_tokens=1024,
    ...                         files={"src/auth.py": "def check(token): ..."}, terms=["AUTH-0001", "auth"])
    >>> builder.build(output_format="Answer with edit blocks.").included
    ('src/auth.py',)
    """

    role: Role
    task: str
    ctx_max: int
    max_tokens: int
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Titled sections always included whole (requirements, contracts, test output...)."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Repository files: path to content."""
    terms: Sequence[str] = ()
    """What ranks the files: requirement ids, names from the task."""
    pinned: Sequence[str] = ()
    """Files ranked first whatever their score."""
    estimate: TokenEstimator = estimate_tokens
    instructions: str | None = None
    """Overrides the role's template."""
    answer_prefix: str = ""
    """When set, the prompt ends with an ``## Answer`` section holding this text, for the model to
    continue (the caller puts it back in front of the completion)."""

    @property
    def budget(self) -> int:
        return self.ctx_max - self.max_tokens

    def build(self, *, output_format: str, feedback: str | None = None) -> Prompt:
        head = [f"# Role: {self.role.value}\n\n{self.instructions or ROLE_INSTRUCTIONS[self.role]}\n"]
        head.append(f"## Task\n\n{self.task.strip()}\n")
        head.extend(f"## {title}\n\n{body.strip()}\n" for title, body in self.inputs.items())
        head.append(f"## Output format\n\n{output_format.strip()}\n")
        tail = [f"## Your previous answer was refused\n\n{feedback.strip()}\n"] if feedback else []
        if self.answer_prefix:
            # A completion model continues the document: end it where the answer begins.
            tail.append(f"## Answer\n\n{self.answer_prefix}")
        context_head = f"## Repository context\n\n{MAP_RULE}\n"
        fixed = "\n".join([*head, context_head, *tail])
        room = self.budget - self.estimate(fixed + "\n\n")
        if room < 0:
            raise ContextBudgetError(
                f"instructions, task, inputs and output format take ~{self.estimate(fixed)} tokens, over the "
                f"budget of {self.budget} (ctx_max {self.ctx_max} - max_tokens {self.max_tokens})"
            )
        ranked = rank_files(self.files, self.terms, pinned=self.pinned)
        rmap = repo_map(ranked, room, self.estimate)
        while True:
            text = "\n".join([*head, context_head + ("\n" + rmap.text if rmap.text else ""), *tail])
            tokens = self.estimate(text)
            if tokens <= self.budget or not (rmap.included or rmap.listed):
                break
            room -= tokens - self.budget  # joins cost more than the parts said: shrink and refit
            rmap = repo_map(ranked, max(room, 0), self.estimate)
        if tokens > self.budget:
            raise ContextBudgetError(f"prompt takes ~{tokens} tokens, over the budget of {self.budget}")
        return Prompt(self.role, text, tokens, self.budget, rmap.included, rmap.listed, rmap.dropped)
