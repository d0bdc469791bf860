"""Declared output formats: how the prompt describes them and how an answer is parsed.

A parse failure raises :class:`OutputFormatError` whose message is written for the model: it is fed
back in the retry prompt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from llama_orch.agents._edits_apply import ChangeSet, EditError, plan_edits

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
M = TypeVar("M", bound=BaseModel)

_JSON_FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)\n```", re.S)


class OutputFormatError(ValueError):
    """The answer does not follow the declared format; the message says how, for the model."""


class OutputFormat(Protocol[T_co]):
    def describe(self) -> str:
        """Instructions for the prompt's output-format section."""
        ...

    def parse(self, text: str) -> T_co:
        """The value in ``text``; raises :class:`OutputFormatError`."""
        ...


class TextFormat:
    """Free text; only an empty answer is refused."""

    def describe(self) -> str:
        return "Answer in plain text."

    def parse(self, text: str) -> str:
        if not text.strip():
            raise OutputFormatError("the answer is empty")
        return text.strip()


class JsonFormat(Generic[M]):
    """One JSON object matching a pydantic model, in a ```json fence or bare."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def describe(self) -> str:
        schema = json.dumps(self.model.model_json_schema(), indent=1, sort_keys=True)
        return (
            "Answer with exactly one JSON object in a ```json fenced block and nothing else. It must "
            f"validate against this JSON Schema:\n\n```json\n{schema}\n```"
        )

    def parse(self, text: str) -> M:
        fenced = _JSON_FENCE.search(text)
        if fenced:
            raw = fenced.group(1)
        else:
            start, end = text.find("{"), text.rfind("}")
            if start < 0 or end < start:
                raise OutputFormatError("no JSON object found: answer with one JSON object in a ```json block")
            raw = text[start : end + 1]
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise OutputFormatError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors())
            raise OutputFormatError(f"the JSON does not match the schema: {problems}") from exc


class EditBlocksFormat:
    """Edit blocks (search/replace, whole-file, unified diff), checked against a workspace in memory:
    an answer whose blocks do not apply is refused with the reasons (nothing is written)."""

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Path(workspace)

    def describe(self) -> str:
        return (
            "Answer with edit blocks. To change a file, give its path (relative to the repository) on its "
            "own line, then:\n\n<<<<<<< SEARCH\nlines copied exactly from the file\n=======\nthe new "
            "lines\n>>>>>>> REPLACE\n\nThe SEARCH lines must match exactly one place in the file; include "
            "enough lines to make them unique. To create a file, leave SEARCH empty. To replace a whole "
            "file, give its path, then:\n\n<<<<<<< FILE\nthe entire new content\n>>>>>>> FILE\n\nPaths "
            "under .git, absolute paths and '..' are refused. All blocks apply together or not at all."
        )

    def parse(self, text: str) -> ChangeSet:
        try:
            return plan_edits(self.workspace, text)
        except EditError as exc:
            raise OutputFormatError(str(exc)) from exc
