"""The auto-programmer: spec model, traceability, model I/O, edit application, workspaces, gates,
and the loop that composes them (plan, stages, run state, resume, trace matrix, replay).

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
from llama_orch.agents._loop import LoopOptions, LoopRun, RunSummary, auto_agents, plan_only, repo_trace, run_loop
from llama_orch.agents._loop_config import LoopConfig, LoopConfigError, load_loop_config, parse_loop_config
from llama_orch.agents._loop_model import BudgetSpent, RunBudget
from llama_orch.agents._loop_repo import RepositoryError
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
from llama_orch.agents._plan import Plan, Target, WorkItem, build_plan, find_target
from llama_orch.agents._planner import SpecError, plan_repository
from llama_orch.agents._prompts import ROLE_INSTRUCTIONS, Prompt, PromptBuilder, Role
from llama_orch.agents._redact import redact_secrets
from llama_orch.agents._replay import ReplayError, ReplayReport, replay
from llama_orch.agents._runstate import RunLockedError, RunState, list_runs
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
from llama_orch.agents._trace_matrix import TraceMatrix, build_matrix
from llama_orch.agents._trace_model import Citation, Gaps, TraceEntry, TraceIndex, build_trace_index
from llama_orch.agents._trace_tests import scan_feature, scan_python_test, scan_tests
from llama_orch.agents._trailers import Trailers, read_trailers, with_trailers
from llama_orch.agents._verdict import TestFailure, judge_new_tests, judge_tests, read_junit
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
    "BudgetSpent",
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
    "LoopConfig",
    "LoopConfigError",
    "LoopOptions",
    "LoopRun",
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
    "Plan",
    "Prompt",
    "PromptBuilder",
    "RankedFile",
    "Renumbered",
    "ReplayError",
    "ReplayReport",
    "RepoMap",
    "RepositoryError",
    "Requirement",
    "Role",
    "RunBudget",
    "RunLockedError",
    "RunState",
    "RunSummary",
    "SandboxRun",
    "SandboxSupport",
    "Spec",
    "SpecDiff",
    "SpecError",
    "SpecIssue",
    "StoredArtifact",
    "SyncReport",
    "Target",
    "TestFailure",
    "TextFormat",
    "TokenEstimator",
    "TraceEntry",
    "TraceIndex",
    "TraceMatrix",
    "Trailers",
    "UnsafePathError",
    "WorkItem",
    "Workspace",
    "WorkspaceError",
    "WorkspaceManager",
    "apply_edits",
    "auto_agents",
    "build_matrix",
    "build_plan",
    "build_trace_index",
    "call_model",
    "compile_id_pattern",
    "ctx_max_for",
    "diff_specs",
    "estimate_tokens",
    "find_target",
    "judge_new_tests",
    "judge_tests",
    "list_runs",
    "load_gates",
    "load_gates_at",
    "load_loop_config",
    "load_spec",
    "parse_edits",
    "parse_gates",
    "parse_loop_config",
    "parse_spec",
    "plan_edits",
    "plan_only",
    "plan_repository",
    "preview_merge",
    "probe_support",
    "rank_files",
    "read_junit",
    "read_trailers",
    "redact_secrets",
    "replay",
    "repo_map",
    "repo_trace",
    "resolve_in_workspace",
    "run_gate",
    "run_gates",
    "run_loop",
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
