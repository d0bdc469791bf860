"""The public names of the spec, traceability, model I/O and edit parts of llama_orch.agents."""

from __future__ import annotations

import llama_orch.agents as agents

AUTHORING = {
    # specs
    "DEFAULT_ID_PATTERN", "Level", "Requirement", "Spec", "SpecIssue", "SpecDiff", "Changed", "Renumbered",
    "Moved", "parse_spec", "load_spec", "diff_specs", "strongest_level", "compile_id_pattern",
    # traceability
    "Citation", "TraceEntry", "Gaps", "TraceIndex", "build_trace_index", "trace_repository", "scan_commits",
    "scan_contract", "scan_contracts", "scan_tests", "scan_python_test", "scan_feature", "TRAILER_KEYS",
    "GitLogError",
    # model I/O
    "Role", "ROLE_INSTRUCTIONS", "Prompt", "PromptBuilder", "MAP_RULE", "ContextBudgetError", "RankedFile",
    "RepoMap", "TokenEstimator", "estimate_tokens", "rank_files", "repo_map", "ctx_max_for", "OutputFormat",
    "OutputFormatError", "JsonFormat", "EditBlocksFormat", "TextFormat", "Completion", "CompletionFn",
    "CompletionRequest", "Attempt", "ModelResult", "ModelOutputError", "call_model", "sdk_completion",
    # edits
    "Edit", "EditSyntaxError", "parse_edits", "MatchError", "UnsafePathError", "resolve_in_workspace",
    "EditProblem", "EditError", "FileChange", "ChangeSet", "plan_edits", "apply_edits", "write_changes",
}  # fmt: skip


def test_authoring_names_are_public_and_importable() -> None:
    assert set(agents.__all__) >= AUTHORING
    for name in agents.__all__:
        assert hasattr(agents, name), name
    assert len(agents.__all__) == len(set(agents.__all__))
