"""Commits that cite requirement ids, and the whole traceability scan of a repository.

A commit cites an id through a Git trailer (``Requirement: AUTH-0001`` or ``Req-Id: AUTH-0001``;
keys case-insensitive, several ids per trailer or several trailers allowed), read with
``git log --format=%(trailers:...)`` so that Git's own trailer rules apply (the last paragraph of
the message, ``Key: value`` lines).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from llama_orch.agents._spec_model import DEFAULT_ID_PATTERN, compile_id_pattern
from llama_orch.agents._spec_parse import load_spec
from llama_orch.agents._trace_contracts import _ids, scan_contracts
from llama_orch.agents._trace_model import Citation, TraceIndex, build_trace_index
from llama_orch.agents._trace_tests import scan_tests

TRAILER_KEYS = ("Requirement", "Req-Id")
_RS, _US = "\x1e", "\x1f"


class GitLogError(RuntimeError):
    """``git log`` failed (not a repository, unknown revision, ...)."""


def scan_commits(
    repo: str | Path,
    revs: Sequence[str] = ("HEAD",),
    *,
    keys: Sequence[str] = TRAILER_KEYS,
    id_pattern: str = DEFAULT_ID_PATTERN,
) -> list[Citation]:
    """Citations in the trailers of the commits reachable from ``revs`` (newest first).

    A repository without commits yet has none; a trailer value with no id in it is kept raw (and
    so reported as an unknown citation)."""
    trailer = ",".join(f"key={k}" for k in keys)
    fmt = f"{_RS}%H{_US}%s{_US}%(trailers:{trailer},unfold=true)"
    cmd = ["git", "-C", str(repo), "log", f"--format={fmt}", *revs, "--"]
    proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", check=False)
    if proc.returncode != 0:
        if _unborn(repo):
            return []
        raise GitLogError(f"git log failed ({proc.returncode}): {proc.stderr.strip()}")
    id_re = compile_id_pattern(id_pattern)
    wanted = {k.lower() for k in keys}
    out: list[Citation] = []
    for record in proc.stdout.split(_RS)[1:]:
        sha, subject, trailers = record.split(_US, 2)
        values = []
        for line in trailers.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in wanted and value.strip():
                values.append(value.strip())
        for req_id in dict.fromkeys(_ids(values, id_re)):
            out.append(Citation(req_id=req_id, kind="commit", source=sha, name=subject))
    return out


def _unborn(repo: str | Path) -> bool:
    """A repository without any commit yet (HEAD names no commit)."""

    def ok(*args: str) -> bool:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False).returncode == 0

    return ok("rev-parse", "--git-dir") and not ok("rev-parse", "--verify", "-q", "HEAD")


def trace_repository(
    root: str | Path,
    *,
    specs: Sequence[str | Path] = ("specs",),
    contracts: Sequence[str | Path] = ("contracts",),
    tests: Sequence[str | Path] = ("tests",),
    git_revs: Sequence[str] | None = ("HEAD",),
    id_pattern: str = DEFAULT_ID_PATTERN,
) -> TraceIndex:
    """Scan a repository: specs (Markdown), contracts, tests, and, unless ``git_revs`` is None, the
    commits reachable from ``git_revs``. Relative paths are taken from ``root``; missing ones are
    skipped.

    >>> index = trace_repository(".", specs=["specs"], git_revs=None)  # doctest: +SKIP
    >>> index.gaps.no_test  # doctest: +SKIP
    """
    base = Path(root)

    def under(paths: Sequence[str | Path]) -> list[Path]:
        return [p for p in (base / q for q in paths) if p.exists()]

    spec = load_spec(under(specs), root=base, id_pattern=id_pattern)
    citations = scan_contracts(under(contracts), base, id_pattern)
    citations += scan_tests(under(tests), base, spec.ids, id_pattern)
    if git_revs is not None:
        citations += scan_commits(base, git_revs, id_pattern=id_pattern)
    return build_trace_index(spec, citations)
