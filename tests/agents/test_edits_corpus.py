"""The edit corpus (tests/agents/edits_corpus/): every good case applies exactly, every bad case is
refused with the expected message and leaves the workspace (and the world outside it) untouched.

A case is a directory: ``before/`` (the tree), ``edit.txt`` (what the model wrote), and either
``after/`` (the exact expected tree) or ``rejected.txt`` (fragments the error message must
contain, one per line). ``links.txt`` adds symlinks (``path -> target``; ``@outside`` is a
directory outside the workspace holding ``secret.txt``). Git cannot store a directory named
``.git``, so ``_dot_git`` in a tree stands for one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from llama_orch.agents import EditError, apply_edits

CORPUS = Path(__file__).parent / "edits_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def materialize(tree: Path, dest: Path, case: Path, outside: Path) -> None:
    shutil.copytree(tree, dest, symlinks=True)
    for dirpath, dirnames, _ in os.walk(dest, topdown=False):
        for name in dirnames:
            if name == "_dot_git":
                os.rename(Path(dirpath, name), Path(dirpath, ".git"))
    links = case / "links.txt"
    if links.exists():
        for line in links.read_text().splitlines():
            path, target = (s.strip() for s in line.split("->"))
            target = target.replace("@outside", str(outside))
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, dest / path)


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root``: kind, and content hash / link target, and mode."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", oct(st.st_mode & 0o7777))
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest() + oct(st.st_mode & 0o7777))
    return out


def tree_hash(root: Path) -> str:
    return hashlib.sha256(repr(sorted(snapshot(root).items())).encode()).hexdigest()


def test_corpus_has_good_and_bad_cases() -> None:
    assert sum(c.startswith("good-") for c in CASES) >= 10
    assert sum(c.startswith("bad-") for c in CASES) >= 20
    for name in CASES:
        case = CORPUS / name
        assert (case / "after").is_dir() != (case / "rejected.txt").exists(), name
        assert name.startswith("good-") == (case / "after").is_dir(), name


@pytest.mark.parametrize("name", CASES)
def test_corpus_case(name: str, tmp_path: Path) -> None:
    case = CORPUS / name
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    ws = tmp_path / "ws"
    materialize(case / "before", ws, case, outside)
    edit = (case / "edit.txt").read_text(encoding="utf-8")
    before, outside_before = tree_hash(ws), tree_hash(outside)
    if (case / "rejected.txt").exists():
        with pytest.raises(EditError) as info:
            apply_edits(ws, edit)
        message = str(info.value)
        for fragment in (case / "rejected.txt").read_text(encoding="utf-8").splitlines():
            assert fragment in message, f"{fragment!r} not in:\n{message}"
        assert tree_hash(ws) == before
    else:
        apply_edits(ws, edit)
        expected = tmp_path / "expected"
        materialize(case / "after", expected, case, outside)
        assert snapshot(ws) == snapshot(expected)
    assert tree_hash(outside) == outside_before
