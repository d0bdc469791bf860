"""The auto-programmer: spec model, traceability, model I/O, edit application, workspaces, gates.

Each part is usable and tested on its own; this module names what is public.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_ID_PATTERN",
    "ChangeSet",
    "Changed",
    "Edit",
    "EditError",
    "EditProblem",
    "EditSyntaxError",
    "FileChange",
    "Level",
    "MatchError",
    "Moved",
    "Renumbered",
    "Requirement",
    "Spec",
    "SpecDiff",
    "SpecIssue",
    "UnsafePathError",
    "apply_edits",
    "compile_id_pattern",
    "diff_specs",
    "load_spec",
    "parse_edits",
    "parse_spec",
    "plan_edits",
    "resolve_in_workspace",
    "strongest_level",
    "write_changes",
]
