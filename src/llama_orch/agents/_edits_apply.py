"""Apply a change set to a workspace all-or-nothing.

:func:`plan_edits` works in memory only: it checks every path, reads every file, applies every
block in order (later blocks see earlier ones) and collects *every* problem, so that one
:class:`EditError` tells the model all that is wrong. :func:`apply_edits` then writes the planned
files: each to a temporary file beside its target (fsynced), and only when all are written, renamed
over their targets; a failure before the renames leaves the tree untouched, a failure among them
restores what was already renamed. Files keep their line ends (LF or CRLF), BOM and mode.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llama_orch.agents._edits_match import MatchError, locate
from llama_orch.agents._edits_parse import Edit, parse_edits
from llama_orch.agents._edits_paths import UnsafePathError, resolve_in_workspace

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class EditProblem:
    """What is wrong with one block (``block`` is None for the edit text as a whole)."""

    block: int | None
    path: str | None
    message: str

    def __str__(self) -> str:
        if self.block is None:
            return self.message
        return f"block {self.block} ({self.path}): {self.message}"


class EditError(ValueError):
    """The change set was refused; nothing was written. ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[EditProblem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"edit refused, nothing was changed ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([head, *(f"- {p}" for p in self.problems)]))


@dataclass
class _Text:
    lines: list[str]
    final_newline: bool = True
    newline: str = "\n"
    bom: bool = False

    @classmethod
    def decode(cls, data: bytes) -> _Text:
        bom = data.startswith(_BOM)
        text = data[len(_BOM) if bom else 0 :].decode("utf-8")
        newline = "\r\n" if "\r\n" in text else "\n"
        text = text.replace("\r\n", "\n")
        if not text:
            return cls([], True, newline, bom)
        final = text.endswith("\n")
        lines = text.split("\n")
        return cls(lines[:-1] if final else lines, final, newline, bom)

    def encode(self) -> bytes:
        body = self.newline.join(self.lines) + (self.newline if self.final_newline and self.lines else "")
        return (_BOM if self.bom else b"") + body.encode("utf-8")


def _lines(text: str) -> list[str]:
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


@dataclass(frozen=True)
class FileChange:
    path: str
    """As the edit named it, relative to the workspace."""
    target: Path
    """The real path written."""
    before: bytes | None
    """None when the file is created."""
    after: bytes

    @property
    def created(self) -> bool:
        return self.before is None


@dataclass(frozen=True)
class ChangeSet:
    """The files a change set writes, in the order first edited, and how each block matched."""

    root: Path
    changes: tuple[FileChange, ...]
    matched: tuple[str, ...] = field(default=())
    """Per block: ``exact``, ``trailing-whitespace``, ``indentation``, ``created`` or ``whole-file``."""

    def diff(self) -> str:
        """The change as a unified diff (``a/``, ``b/`` prefixes), e.g. for a ``diff`` artifact."""
        out: list[str] = []
        for ch in self.changes:
            old = ch.before.decode("utf-8", "replace").splitlines(keepends=True) if ch.before else []
            new = ch.after.decode("utf-8", "replace").splitlines(keepends=True)
            src = "/dev/null" if ch.created else f"a/{ch.path}"
            out.extend(difflib.unified_diff(old, new, src, f"b/{ch.path}"))
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)


@dataclass
class _State:
    path: str
    before: bytes | None
    text: _Text | None
    broken: bool = False


def _load(target: Path, path: str) -> _State:
    if not target.exists():
        return _State(path, None, None)
    data = target.read_bytes()
    return _State(path, data, _Text.decode(data))


def _apply_one(edit: Edit, state: _State) -> str:
    """Apply ``edit`` to ``state`` in memory; returns how it matched, raises ValueError when it cannot."""
    if edit.search is None:  # whole file
        old = state.text
        state.text = _Text(_lines(edit.replace), True, old.newline if old else "\n", old.bom if old else False)
        return "whole-file"
    search = _lines(edit.search)
    if state.text is None:
        if search:
            raise ValueError("the file does not exist; to create it use an empty SEARCH section or a whole-file block")
        state.text = _Text(_lines(edit.replace))
        return "created"
    if not search:
        if state.text.lines:
            raise ValueError(
                "SEARCH is empty but the file exists and is not empty; quote the lines to replace, "
                "or send the whole file as a whole-file block"
            )
        state.text.lines = _lines(edit.replace)
        return "created"
    found = locate(state.text.lines, search, _lines(edit.replace), hint=edit.hint_line)
    state.text.lines[found.start : found.end] = found.replacement
    return found.how


def plan_edits(root: str | Path, edits: str | Sequence[Edit]) -> ChangeSet:
    """Check and apply ``edits`` (text or parsed) in memory; raises :class:`EditError` listing every
    problem, or returns the :class:`ChangeSet` that :func:`write_changes` would write."""
    base = Path(root).resolve(strict=True)
    if isinstance(edits, str):
        try:
            edits = parse_edits(edits)
        except ValueError as exc:
            raise EditError([EditProblem(None, None, str(exc))]) from exc
    if not edits:
        raise EditError([EditProblem(None, None, "no edit blocks found")])
    states: dict[Path, _State] = {}
    problems: list[EditProblem] = []
    matched: list[str] = []
    for edit in edits:
        try:
            target = resolve_in_workspace(base, edit.path)
            state = states.get(target) or states.setdefault(target, _load(target, edit.path))
        except UnsafePathError as exc:
            problems.append(EditProblem(edit.block, edit.path, str(exc)))
            continue
        except UnicodeDecodeError:
            problems.append(EditProblem(edit.block, edit.path, "the file is not UTF-8 text"))
            continue
        except OSError as exc:
            problems.append(EditProblem(edit.block, edit.path, f"cannot read the file: {exc.strerror or exc}"))
            continue
        try:
            matched.append(_apply_one(edit, state))
        except (MatchError, ValueError) as exc:
            state.broken = True
            problems.append(EditProblem(edit.block, edit.path, str(exc)))
    if problems:
        raise EditError(problems)
    changes = []
    for target, state in states.items():
        assert state.text is not None
        after = state.text.encode()
        if after != state.before:
            changes.append(FileChange(state.path, target, state.before, after))
    return ChangeSet(base, tuple(changes), tuple(matched))


def apply_edits(root: str | Path, edits: str | Sequence[Edit]) -> ChangeSet:
    """:func:`plan_edits`, then :func:`write_changes`: all files change, or none does."""
    changes = plan_edits(root, edits)
    write_changes(changes)
    return changes


def write_changes(changes: ChangeSet) -> None:
    """Write a planned change set atomically (see the module docstring)."""
    problems = []
    for ch in changes.changes:
        try:
            still = resolve_in_workspace(changes.root, ch.path) == ch.target
            current = ch.target.read_bytes() if ch.target.exists() else None
        except (UnsafePathError, OSError):
            still, current = False, None
        if not still or current != ch.before:
            problems.append(EditProblem(None, ch.path, f"{ch.path}: changed on disk since the edit was planned"))
    if problems:
        raise EditError(problems)
    made_dirs: list[Path] = []
    temps: list[tuple[str, FileChange]] = []
    try:
        for ch in changes.changes:
            made_dirs.extend(_make_parents(ch.target.parent, changes.root))
            temps.append((_write_temp(ch), ch))
    except BaseException:
        _discard(temps, made_dirs)
        raise
    done: list[FileChange] = []
    try:
        for tmp, ch in temps:
            os.replace(tmp, ch.target)
            done.append(ch)
    except BaseException:
        _restore(done)
        _discard([t for t in temps if t[1] not in done], made_dirs)
        raise
    for directory in {ch.target.parent for ch in changes.changes}:
        _fsync_dir(directory)


def _make_parents(directory: Path, root: Path) -> list[Path]:
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir()
    return list(reversed(missing))


def _write_temp(ch: FileChange) -> str:
    fd, tmp = tempfile.mkstemp(dir=ch.target.parent, prefix=f".{ch.target.name}.", suffix=".edit-tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(ch.after)
            fh.flush()
            os.fsync(fh.fileno())
        if ch.before is not None:
            os.chmod(tmp, ch.target.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _discard(temps: Sequence[tuple[str, FileChange]], made_dirs: Sequence[Path]) -> None:
    for tmp, _ in temps:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    for d in reversed(made_dirs):
        with contextlib.suppress(OSError):
            d.rmdir()


def _restore(done: Sequence[FileChange]) -> None:
    for ch in reversed(done):
        with contextlib.suppress(OSError):
            if ch.before is None:
                ch.target.unlink()
            else:
                fd, tmp = tempfile.mkstemp(dir=ch.target.parent, prefix=f".{ch.target.name}.", suffix=".restore")
                with os.fdopen(fd, "wb") as fh:
                    fh.write(ch.before)
                os.chmod(tmp, ch.target.stat().st_mode & 0o7777)
                os.replace(tmp, ch.target)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
