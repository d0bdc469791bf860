"""Read the edit formats a model writes into :class:`Edit` values.

Three formats, which may be mixed in one text; blocks are numbered 1, 2, 3... in order (each
hunk of a unified diff is a block of its own)::

    src/app.py                     search/replace block: replace SEARCH by REPLACE in the file
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE

    docs/new.md                    whole-file block: create or overwrite the file
    <<<<<<< FILE
    entire content
    >>>>>>> FILE

    --- a/src/app.py               unified diff (``/dev/null`` as the old file creates it)
    +++ b/src/app.py
    @@ -10,3 +10,4 @@
     context
    -old
    +new

Markers are whole lines (trailing whitespace ignored). The file path is the nearest line above a
``<<<<<<<`` marker that is neither blank nor a code fence (the model may wrap blocks in fences);
it may be wrapped in backticks or ``**``, or prefixed with ``File:`` or Markdown ``#``. When that
nearest line is the previous block's closing marker, the block edits the same file as the previous
one. An empty SEARCH creates a file that does not exist yet.

Unified diff: ``diff --git``/``index`` lines are ignored, ``a/``+``b/`` prefixes are stripped, the
hunk body is the run of lines starting with space, ``+``, ``-`` or ``\\`` (an empty line inside
the run is an empty context line); the counts in ``@@`` headers are not trusted, only the start
line, used as a hint among several matches. A hunk's old side (context and ``-`` lines) is
located like a SEARCH text. ``\\ No newline at end of file`` is ignored (a file keeps its final
newline or lack of one). Deleting files (``+++ /dev/null``) is not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SEARCH, DIVIDER, REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
FILE_OPEN, FILE_CLOSE = "<<<<<<< FILE", ">>>>>>> FILE"
_CLOSERS = (REPLACE, FILE_CLOSE)
_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_PATH_DECOR = re.compile(r"^(?:#+\s*)?(?:file:\s*)?(?:\*\*|`)?(?P<path>.*?)(?:\*\*|`)?:?$", re.I)


@dataclass(frozen=True)
class Edit:
    """One block: replace ``search`` by ``replace`` in ``path`` (whole-file: ``search`` is None)."""

    path: str
    search: str | None
    replace: str
    block: int
    line: int
    """1-based line of the block's opening marker (or hunk header) in the edit text."""
    kind: Literal["search-replace", "whole-file", "hunk"] = "search-replace"
    hint_line: int | None = None
    """For hunks: the 1-based line where the old side is expected, after earlier hunks."""

    @property
    def label(self) -> str:
        return f"block {self.block} ({self.kind}, {self.path!r}, edit line {self.line})"


class EditSyntaxError(ValueError):
    """The edit text itself is malformed: a marker missing or out of place."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"edit text line {line}: {message}")
        self.line = line


def _is_fence(line: str) -> bool:
    s = line.strip()
    return s.startswith("```") or s.startswith("~~~")


def _join(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.edits: list[Edit] = []

    def path_before(self, i: int) -> str:
        j = i - 1
        while j >= 0 and (not self.lines[j].strip() or _is_fence(self.lines[j])):
            j -= 1
        if j < 0:
            raise EditSyntaxError(i + 1, f"no file path line before {self.lines[i].strip()!r}")
        candidate = self.lines[j].strip()
        if candidate in _CLOSERS:
            if not self.edits:  # pragma: no cover - a closer is always preceded by an edit
                raise EditSyntaxError(i + 1, "no file path line")
            return self.edits[-1].path
        m = _PATH_DECOR.match(candidate)
        path = (m.group("path") if m else candidate).strip()
        if not path or path.startswith(("<<<<<<<", ">>>>>>>", "=======")):
            raise EditSyntaxError(i + 1, f"no file path line before {self.lines[i].strip()!r}")
        return path

    def until(self, start: int, closers: tuple[str, ...], opener: str, expect: str) -> int:
        """Index of the first line at or after ``start`` that is one of ``closers``."""
        for k in range(start, len(self.lines)):
            s = self.lines[k].rstrip()
            if s in closers:
                return k
            if s in (SEARCH, FILE_OPEN):
                raise EditSyntaxError(k + 1, f"{s!r} inside the block opened by {opener!r}; close that block first")
        raise EditSyntaxError(start, f"block opened by {opener!r} is never closed with {expect!r}")

    def read(self) -> list[Edit]:
        i = 0
        n = len(self.lines)
        while i < n:
            s = self.lines[i].rstrip()
            if s == SEARCH:
                path = self.path_before(i)
                mid = self.until(i + 1, (DIVIDER, REPLACE), SEARCH, DIVIDER)
                if self.lines[mid].rstrip() != DIVIDER:
                    raise EditSyntaxError(mid + 1, f"{REPLACE!r} before {DIVIDER!r}")
                end = self.until(mid + 1, (REPLACE, DIVIDER), SEARCH, REPLACE)
                if self.lines[end].rstrip() != REPLACE:
                    raise EditSyntaxError(end + 1, f"a second {DIVIDER!r} in one block")
                block = len(self.edits) + 1
                self.edits.append(
                    Edit(path, _join(self.lines[i + 1 : mid]), _join(self.lines[mid + 1 : end]), block, i + 1)
                )
                i = end + 1
            elif s == FILE_OPEN:
                path = self.path_before(i)
                end = self.until(i + 1, (FILE_CLOSE,), FILE_OPEN, FILE_CLOSE)
                block = len(self.edits) + 1
                self.edits.append(Edit(path, None, _join(self.lines[i + 1 : end]), block, i + 1, "whole-file"))
                i = end + 1
            elif s in (DIVIDER, REPLACE, FILE_CLOSE):
                raise EditSyntaxError(i + 1, f"{s!r} outside a block")
            elif s.startswith("--- ") and i + 1 < n and self.lines[i + 1].startswith("+++ "):
                i = self.diff(i)
            else:
                i += 1
        return self.edits

    def diff(self, i: int) -> int:
        old = _diff_path(self.lines[i][4:])
        new = _diff_path(self.lines[i + 1][4:])
        if new == "/dev/null":
            raise EditSyntaxError(i + 2, f"deleting files is not supported ({old!r})")
        if (old.startswith("a/") or old == "/dev/null") and new.startswith("b/"):
            new = new[2:]
        creating = old == "/dev/null"
        i += 2
        delta = 0
        hunks = 0
        n = len(self.lines)
        while True:
            k = i
            while k < n and not self.lines[k].strip():
                k += 1  # blank lines between hunks
            if k >= n or not (m := _HUNK.match(self.lines[k])):
                break
            header = i = k
            i += 1
            body: list[str] = []
            while i < n:
                line = self.lines[i]
                if line.startswith("--- ") and i + 1 < n and self.lines[i + 1].startswith("+++ "):
                    break
                if line == "":
                    rest = self.lines[i + 1 : i + 2]
                    if not rest or rest[0][:1] not in (" ", "+", "-", "\\") or _HUNK.match(rest[0]):
                        break
                    body.append(" ")
                elif line[:1] in (" ", "+", "-", "\\"):
                    body.append(line)
                else:
                    break
                i += 1
            old_side = [b[1:] for b in body if b[:1] in (" ", "-")]
            new_side = [b[1:] for b in body if b[:1] in (" ", "+")]
            hunks += 1
            start = int(m.group(1)) if int(m.group(1)) > 0 else 1
            self.edits.append(
                Edit(new, _join(old_side), _join(new_side), len(self.edits) + 1, header + 1, "hunk", start + delta)
            )
            delta += len(new_side) - len(old_side)
        if not hunks:
            raise EditSyntaxError(i + 1, f"diff of {new!r} has no '@@ -a,b +c,d @@' hunk header")
        if creating and hunks > 1:
            raise EditSyntaxError(i, f"a new file ({new!r}) must come as one hunk")
        return i


def _diff_path(raw: str) -> str:
    return raw.split("\t", 1)[0].strip()


def parse_edits(text: str) -> list[Edit]:
    """Every block in ``text``, in order; raises :class:`EditSyntaxError` on a malformed block.

    >>> [e.path for e in parse_edits("a.py\\n<<<<<<< SEARCH\\nx = 1\\n=======\\nx = 2\\n>>>>>>> REPLACE\\n")]
    ['a.py']
    """
    return _Reader(text).read()
