"""Context budgets and the ranked repository map.

The prompt of a call must fit ``ctx_max - max_tokens`` of the pool that runs it (capabilities give
``ctx_max`` per pool). Repository context is never cut mid-file: files are ranked by a relevance
score, included whole in rank order while they fit, the rest listed by path only while the paths
fit, and whatever does not fit even as a path is recorded as dropped. That rule is stated in the
prompt itself and recorded with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from llama_orch_api import Capabilities

TokenEstimator = Callable[[str], int]

MAP_RULE = (
    "Repository files are ranked by relevance to the task (mentions of its requirement ids and "
    "terms, in the path and the content). Whole files are included in rank order while they fit the "
    "context budget; the rest are listed by path only; none is cut."
)


def estimate_tokens(text: str) -> int:
    """About 4 bytes per token (English and code), rounded up; the server's admission check uses the
    same estimate, so a prompt within budget by this count is not refused as too long."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return math.ceil(size / 4)


class ContextBudgetError(ValueError):
    """The parts of a prompt that may not be trimmed (instructions, task, inputs) exceed the budget."""


def ctx_max_for(capabilities: Capabilities, pool: str | None = None) -> int:
    """``ctx_max`` of ``pool``, or the smallest of all pools when none is named (any may run it)."""
    pools = [p for p in capabilities.pools if pool is None or p.id == pool]
    if not pools:
        raise ValueError(f"no pool {pool!r} in the capabilities")
    return min(p.ctx_max for p in pools)


@dataclass(frozen=True)
class RankedFile:
    path: str
    content: str
    score: float


def rank_files(files: Mapping[str, str], terms: Iterable[str] = (), *, pinned: Iterable[str] = ()) -> list[RankedFile]:
    """Files by relevance, best first (ties by path): pinned files first, then per term (case
    insensitive, whole words) 5 points when the path contains it plus one per mention in the
    content, at most 10; terms that look like requirement ids (``ABC-0001``) count triple."""
    pins = set(pinned)
    words = [t for t in dict.fromkeys(terms) if t.strip()]
    out = []
    for path, content in files.items():
        score = 0.0
        for term in words:
            weight = 3 if re.fullmatch(r"[A-Z][A-Z0-9-]*-\d+", term) else 1
            pattern = re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.I)
            hits = (5 if pattern.search(path) else 0) + min(10, len(pattern.findall(content)))
            score += weight * hits
        out.append(RankedFile(path, content, math.inf if path in pins else score))
    return sorted(out, key=lambda f: (-f.score, f.path))


@dataclass(frozen=True)
class RepoMap:
    """What the repository-context section holds, and what did not fit."""

    text: str
    included: tuple[str, ...]
    listed: tuple[str, ...]
    dropped: tuple[str, ...]


def file_section(path: str, content: str) -> str:
    fence = "````" if "```" in content else "```"
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"### {path}\n{fence}\n{body}{fence}\n"


def repo_map(ranked: list[RankedFile], budget: int, estimate: TokenEstimator = estimate_tokens) -> RepoMap:
    """The repository-context section for ``ranked`` files within ``budget`` tokens (see module doc)."""

    def render(included: list[RankedFile], listed: list[str]) -> str:
        parts = [file_section(f.path, f.content) for f in included]
        if listed:
            parts.append("Files not shown (by path only, in rank order):\n" + "".join(f"- {p}\n" for p in listed))
        return "\n".join(parts)

    included: list[RankedFile] = []
    rest: list[str] = []
    used = 0
    for f in ranked:
        cost = estimate(file_section(f.path, f.content) + "\n")
        if not rest and used + cost <= budget:
            included.append(f)
            used += cost
        else:
            rest.append(f.path)
    listed = list(rest)
    dropped: list[str] = []
    # Estimates of parts need not add up to the estimate of the whole: check the whole, shed the
    # lowest-ranked entry until it fits.
    while estimate(render(included, listed)) > budget:
        if listed:
            dropped.insert(0, listed.pop())
        elif included:
            listed.insert(0, included.pop().path)
        else:  # pragma: no cover - an empty section always fits a non-negative budget
            break
    return RepoMap(render(included, listed), tuple(f.path for f in included), tuple(listed), tuple(dropped))
