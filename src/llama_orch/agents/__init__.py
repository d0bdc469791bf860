"""The auto-programmer: spec model, traceability, model I/O, edit application, workspaces, gates.

Each part is usable and tested on its own; this module names what is public.
"""

from __future__ import annotations

from llama_orch.agents._artifacts_client import AgentArtifacts, StoredArtifact, SyncReport
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
from llama_orch.agents._gates import (
    GateConfigError,
    GateResult,
    GateSpec,
    load_gates,
    load_gates_at,
    parse_gates,
    run_gate,
    run_gates,
)
from llama_orch.agents._git import MIN_GIT_VERSION, Git, GitError, GitVersionError
from llama_orch.agents._merge import GateRunner, MergeDecision, MergePreview, MergeQueue, preview_merge
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
from llama_orch.agents._redact import redact_secrets
from llama_orch.agents._sandbox import Isolation, Limits, SandboxRun, SandboxSupport, probe_support, run_sandboxed
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
from llama_orch.agents._trailers import Trailers, read_trailers, with_trailers
from llama_orch.agents._workspace import (
    DEFAULT_BRANCH_PREFIX,
    DEFAULT_INTEGRATION_BRANCH,
    NothingToCommitError,
    Workspace,
    WorkspaceError,
    WorkspaceManager,
)

__all__ = [
    "DEFAULT_BRANCH_PREFIX",
    "DEFAULT_ID_PATTERN",
    "DEFAULT_INTEGRATION_BRANCH",
    "MAP_RULE",
    "MIN_GIT_VERSION",
    "ROLE_INSTRUCTIONS",
    "TRAILER_KEYS",
    "AgentArtifacts",
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
    "GateConfigError",
    "GateResult",
    "GateRunner",
    "GateSpec",
    "Git",
    "GitError",
    "GitLogError",
    "GitVersionError",
    "Isolation",
    "JsonFormat",
    "Level",
    "Limits",
    "MatchError",
    "MergeDecision",
    "MergePreview",
    "MergeQueue",
    "ModelOutputError",
    "ModelResult",
    "Moved",
    "NothingToCommitError",
    "OutputFormat",
    "OutputFormatError",
    "Prompt",
    "PromptBuilder",
    "RankedFile",
    "Renumbered",
    "RepoMap",
    "Requirement",
    "Role",
    "SandboxRun",
    "SandboxSupport",
    "Spec",
    "SpecDiff",
    "SpecIssue",
    "StoredArtifact",
    "SyncReport",
    "TextFormat",
    "TokenEstimator",
    "TraceEntry",
    "TraceIndex",
    "Trailers",
    "UnsafePathError",
    "Workspace",
    "WorkspaceError",
    "WorkspaceManager",
    "apply_edits",
    "build_trace_index",
    "call_model",
    "compile_id_pattern",
    "ctx_max_for",
    "diff_specs",
    "estimate_tokens",
    "load_gates",
    "load_gates_at",
    "load_spec",
    "parse_edits",
    "parse_gates",
    "parse_spec",
    "plan_edits",
    "preview_merge",
    "probe_support",
    "rank_files",
    "read_trailers",
    "redact_secrets",
    "repo_map",
    "resolve_in_workspace",
    "run_gate",
    "run_gates",
    "run_sandboxed",
    "scan_commits",
    "scan_contract",
    "scan_contracts",
    "scan_feature",
    "scan_python_test",
    "scan_tests",
    "sdk_completion",
    "strongest_level",
    "trace_repository",
    "with_trailers",
    "write_changes",
]
