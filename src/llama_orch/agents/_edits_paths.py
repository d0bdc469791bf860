"""Which paths an edit may touch: inside the workspace, never ``.git``, never through a symlink out."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """An edit names a path outside the workspace, inside ``.git``, or otherwise not writable."""


def _is_git(part: str) -> bool:
    return part.casefold() == ".git"


def resolve_in_workspace(root: Path, path: str) -> Path:
    """The real path ``path`` names inside ``root`` (which must already be resolved).

    Refused: empty paths, NUL or backslash in the path, absolute paths (``/x``, ``~/x``, ``C:x``),
    any ``..`` component, any ``.git`` component (any case), a path whose resolution (symlinks
    followed, in the file itself and in every parent) leaves ``root`` or lands in ``.git``, and a
    path that is, or goes through, something other than a directory.
    """
    if not path or not path.strip():
        raise UnsafePathError("empty path")
    if "\x00" in path or "\\" in path:
        raise UnsafePathError(f"{path!r}: NUL or backslash in a path")
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        raise UnsafePathError(f"{path!r}: absolute paths are refused; give a path relative to the workspace")
    parts = [p for p in PurePosixPath(path).parts if p != "."]
    if ".." in parts:
        raise UnsafePathError(f"{path!r}: '..' is refused")
    if any(_is_git(p) for p in parts):
        raise UnsafePathError(f"{path!r}: files under .git are refused")
    if not parts:
        raise UnsafePathError(f"{path!r}: names the workspace itself")
    try:
        real = root.joinpath(*parts).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UnsafePathError(f"{path!r}: cannot be resolved ({exc})") from exc
    if not real.is_relative_to(root) or real == root:
        raise UnsafePathError(f"{path!r}: resolves outside the workspace (through a symlink)")
    if any(_is_git(p) for p in real.relative_to(root).parts):
        raise UnsafePathError(f"{path!r}: resolves into .git (through a symlink)")
    if real.is_dir():
        raise UnsafePathError(f"{path!r}: is a directory")
    for parent in real.relative_to(root).parents:
        here = root / parent
        if here.exists() and not here.is_dir():
            raise UnsafePathError(f"{path!r}: {parent.as_posix()!r} is not a directory")
    return real
