"""Find where a SEARCH text is in a file: exactly, then tolerating whitespace; else say what is nearest.

Levels, tried in order; the first level with any match decides:

1. ``exact``: the lines are equal;
2. ``trailing-whitespace``: equal once trailing whitespace is removed from both sides;
3. ``indentation``: equal once one indentation offset is applied to every non-blank line, the
   same offset for the whole block (the file's lines are the SEARCH lines with a prefix added, or
   with a prefix removed); the REPLACE lines get the same offset, so that a block written at the
   wrong depth lands at the right one.

More than one match at the deciding level is ambiguous — unless the block carries a line hint
(diff hunks) that one of them starts at. No match at any level is an error that names the nearest
region of the file (by :class:`difflib.SequenceMatcher` ratio) and its first differing line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SHOWN = 12  # lines of the nearest region quoted back to the model


class MatchError(ValueError):
    """A SEARCH text is missing from the file or matches more than one place."""


@dataclass(frozen=True)
class Located:
    start: int
    """0-based index of the first matched line."""
    end: int
    """0-based index one past the last matched line."""
    replacement: list[str]
    how: str


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _offset(file_lines: Sequence[str], search: Sequence[str]) -> Callable[[str], str] | None:
    """The re-indentation that maps SEARCH lines onto ``file_lines``, when one consistent offset does."""
    pairs = [(f.rstrip(), s.rstrip()) for f, s in zip(file_lines, search, strict=True)]
    nonblank = [(f, s) for f, s in pairs if f or s]
    if not nonblank:
        return None
    f0, s0 = nonblank[0]
    lf, ls = _lead(f0), _lead(s0)
    if lf.endswith(ls):
        prefix = lf[: len(lf) - len(ls)]

        def shift(line: str) -> str:
            return prefix + line if line.strip() else line
    elif ls.endswith(lf):
        prefix = ls[: len(ls) - len(lf)]

        def shift(line: str) -> str:
            if not line.strip():
                return line
            return line[len(prefix) :] if line.startswith(prefix) else line.lstrip()
    else:
        return None
    if all(f == shift(s) for f, s in pairs):
        return shift
    return None


def _matches(lines: Sequence[str], search: Sequence[str], equal: Callable[[Sequence[str]], bool]) -> list[int]:
    n = len(search)
    return [i for i in range(len(lines) - n + 1) if equal(lines[i : i + n])]


def locate(lines: Sequence[str], search: Sequence[str], replace: Sequence[str], *, hint: int | None = None) -> Located:
    """Where ``search`` is in ``lines`` and what replaces it; raises :class:`MatchError`."""
    n = len(search)
    stripped = [s.rstrip() for s in search]
    levels: list[tuple[str, Callable[[Sequence[str]], bool]]] = [
        ("exact", lambda window: list(window) == list(search)),
        ("trailing-whitespace", lambda window: [w.rstrip() for w in window] == stripped),
        ("indentation", lambda window: _offset(window, search) is not None),
    ]
    for how, equal in levels:
        found = _matches(lines, search, equal)
        if not found:
            continue
        if len(found) > 1:
            if hint is not None and hint - 1 in found:
                found = [hint - 1]
            else:
                where = ", ".join(f"{i + 1}-{i + n}" if n > 1 else f"{i + 1}" for i in found[:8])
                raise MatchError(
                    f"SEARCH text matches {len(found)} places ({how} match at lines {where}); "
                    "include more surrounding lines so that it matches exactly one"
                )
        start = found[0]
        replacement = list(replace)
        if how == "indentation":
            shift = _offset(lines[start : start + n], search)
            assert shift is not None
            replacement = [shift(r) for r in replacement]
        return Located(start, start + n, replacement, how)
    raise MatchError("SEARCH text not found (exactly, or with whitespace differences). " + nearest(lines, search))


def nearest(lines: Sequence[str], search: Sequence[str]) -> str:
    """A description of the region of ``lines`` most like ``search``, for the model to correct itself."""
    if not lines:
        return "The file is empty."
    n = max(1, min(len(search), len(lines)))
    target = "\n".join(s.strip() for s in search)
    scored: list[tuple[float, int]] = []
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    for i in range(len(lines) - n + 1):
        matcher.set_seq1("\n".join(line.strip() for line in lines[i : i + n]))
        scored.append((matcher.quick_ratio(), i))
    scored.sort(key=lambda t: (-t[0], t[1]))
    best_ratio, best = 0.0, scored[0][1]
    for _, i in scored[:20]:
        matcher.set_seq1("\n".join(line.strip() for line in lines[i : i + n]))
        if (ratio := matcher.ratio()) > best_ratio:
            best_ratio, best = ratio, i
    region = lines[best : best + n]
    shown = "\n".join(f"{best + k + 1:>5}| {line}" for k, line in enumerate(region[:_SHOWN]))
    if len(region) > _SHOWN:
        shown += f"\n     | ... ({len(region) - _SHOWN} more lines)"
    text = f"Nearest lines are {best + 1}-{best + len(region)} (similarity {best_ratio:.2f}):\n{shown}"
    if [s.strip() for s in search] == [line.strip() for line in region]:
        text += (
            "\nThese lines differ from SEARCH only in whitespace, and not by one indentation offset for the whole "
            "block: copy the file's indentation exactly."
        )
    for k, (want, have) in enumerate(zip(search, region, strict=False)):
        if want != have:
            text += f"\nFirst difference: SEARCH line {k + 1} is {want!r}, file line {best + k + 1} is {have!r}."
            break
    return text
