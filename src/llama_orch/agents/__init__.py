"""The auto-programmer: spec model, traceability, model I/O, edit application, workspaces, gates.

Each part is usable and tested on its own; this module names what is public.
"""

from __future__ import annotations

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
    "Changed",
    "Level",
    "Moved",
    "Renumbered",
    "Requirement",
    "Spec",
    "SpecDiff",
    "SpecIssue",
    "compile_id_pattern",
    "diff_specs",
    "load_spec",
    "parse_spec",
    "strongest_level",
]
