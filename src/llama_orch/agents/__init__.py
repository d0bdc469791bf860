"""The auto-programmer: spec model, traceability, model I/O, edit application, workspaces, gates.

Each part is usable and tested on its own; this module names what is public.
"""

from __future__ import annotations

from llama_orch.agents._context import (
    MAP_RULE,
    ContextBudgetError,
    RankedFile,
    RepoMap,
    TokenEstimator,
    ctx_max_for,
    estimate_tokens,
    rank_files,
    repo_map,
)
from llama_orch.agents._edits_apply import (
    ChangeSet,
    EditError,
    EditProblem,
    FileChange,
    apply_edits,
    plan_edits,
    write_changes,
)
from llama_orch.agents._edits_match import MatchError
from llama_orch.agents._edits_parse import Edit, EditSyntaxError, parse_edits
from llama_orch.agents._edits_paths import UnsafePathError, resolve_in_workspace
from llama_orch.agents._formats import EditBlocksFormat, JsonFormat, OutputFormat, OutputFormatError, TextFormat
from llama_orch.agents._modelio import (
    Attempt,
    Completion,
    CompletionFn,
    CompletionRequest,
    ModelOutputError,
    ModelResult,
    call_model,
    sdk_completion,
)
from llama_orch.agents._prompts import ROLE_INSTRUCTIONS, Prompt, PromptBuilder, Role
from llama_orch.agents._spec_diff import Changed, Moved, Renumbered, SpecDiff, diff_specs
from llama_orch.agents._spec_model import (
    DEFAULT_ID_PATTERN,
    Level,
    Requirement,
    Spec,
    SpecIssue,
    compile_id_pattern,
    strongest_level,
)
from llama_orch.agents._spec_parse import load_spec, parse_spec
from llama_orch.agents._trace import TRAILER_KEYS, GitLogError, scan_commits, trace_repository
from llama_orch.agents._trace_contracts import scan_contract, scan_contracts
from llama_orch.agents._trace_model import Citation, Gaps, TraceEntry, TraceIndex, build_trace_index
from llama_orch.agents._trace_tests import scan_feature, scan_python_test, scan_tests

__all__ = [
    "DEFAULT_ID_PATTERN",
    "MAP_RULE",
    "ROLE_INSTRUCTIONS",
    "TRAILER_KEYS",
    "Attempt",
    "ChangeSet",
    "Changed",
    "Citation",
    "Completion",
    "CompletionFn",
    "CompletionRequest",
    "ContextBudgetError",
    "Edit",
    "EditBlocksFormat",
    "EditError",
    "EditProblem",
    "EditSyntaxError",
    "FileChange",
    "Gaps",
    "GitLogError",
    "JsonFormat",
    "Level",
    "MatchError",
    "ModelOutputError",
    "ModelResult",
    "Moved",
    "OutputFormat",
    "OutputFormatError",
    "Prompt",
    "PromptBuilder",
    "RankedFile",
    "Renumbered",
    "RepoMap",
    "Requirement",
    "Role",
    "Spec",
    "SpecDiff",
    "SpecIssue",
    "TextFormat",
    "TokenEstimator",
    "TraceEntry",
    "TraceIndex",
    "UnsafePathError",
    "apply_edits",
    "build_trace_index",
    "call_model",
    "compile_id_pattern",
    "ctx_max_for",
    "diff_specs",
    "estimate_tokens",
    "load_spec",
    "parse_edits",
    "parse_spec",
    "plan_edits",
    "rank_files",
    "repo_map",
    "resolve_in_workspace",
    "scan_commits",
    "scan_contract",
    "scan_contracts",
    "scan_feature",
    "scan_python_test",
    "scan_tests",
    "sdk_completion",
    "strongest_level",
    "trace_repository",
    "write_changes",
]
