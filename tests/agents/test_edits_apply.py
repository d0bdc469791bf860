"""Edit application beyond the corpus: file conventions kept, atomic writes, parsing details."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.agents import EditError, apply_edits, parse_edits, plan_edits, write_changes
from llama_orch.agents._edits_match import locate


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(b"a = 1\r\nb = 2\r\n", b"a = 1\r\nb = 3\r\n", id="crlf-kept"),
        pytest.param(b"\xef\xbb\xbfa = 1\nb = 2\n", b"\xef\xbb\xbfa = 1\nb = 3\n", id="bom-kept"),
        pytest.param(b"a = 1\nb = 2", b"a = 1\nb = 3", id="no-final-newline-kept"),
    ],
)
def test_file_conventions_are_kept(tmp_path: Path, before: bytes, after: bytes) -> None:
    (tmp_path / "f.py").write_bytes(before)
    apply_edits(tmp_path, block("f.py", "b = 2\n", "b = 3\n"))
    assert (tmp_path / "f.py").read_bytes() == after


def test_mode_is_kept_and_new_files_follow_the_umask(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("echo a\n")
    script.chmod(0o750)
    apply_edits(tmp_path, block("run.sh", "echo a\n", "echo b\n") + block("new.txt", "", "x\n"))
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask


def test_failure_among_renames_restores_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    edits = block("a.txt", "a\n", "A\n") + block("sub/dir/c.txt", "", "C\n") + block("b.txt", "b\n", "B\n")
    real_replace = os.replace
    calls = []

    def flaky_replace(src: str, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        apply_edits(tmp_path, edits)
    monkeypatch.undo()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "a\n"
    assert (tmp_path / "b.txt").read_text() == "b\n"


def test_failure_while_writing_temps_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    plan = plan_edits(tmp_path, block("a.txt", "a\n", "A\n") + block("new/b.txt", "", "B\n"))

    def no_fsync(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_changes(plan)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt"]


def test_a_file_changed_after_planning_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    plan = plan_edits(tmp_path, block("a.txt", "a\n", "A\n"))
    (tmp_path / "a.txt").write_text("someone else\n")
    with pytest.raises(EditError, match="changed on disk since the edit was planned"):
        write_changes(plan)
    assert (tmp_path / "a.txt").read_text() == "someone else\n"


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    with pytest.raises(EditError, match=r"block 1 \(loop1/x\.txt\)"):
        apply_edits(tmp_path, block("loop1/x.txt", "", "x\n"))


def test_problems_from_every_block_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    edits = block("a.txt", "three\n", "3\n") + block("../x", "", "x\n") + block("a.txt", "two\n", "2\n")
    with pytest.raises(EditError) as info:
        apply_edits(tmp_path, edits)
    assert [(p.block, p.path) for p in info.value.problems] == [(1, "a.txt"), (2, "../x")]
    assert str(info.value).startswith("edit refused, nothing was changed (2 problems):")


def test_change_set_reports_matches_and_diff(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("class A:\n    def f(self):\n        return 1  \n")
    changes = apply_edits(tmp_path, block("a.py", "def f(self):\n    return 1\n", "def f(self):\n    return 2\n"))
    assert changes.matched == ("indentation",)
    assert changes.diff() == (
        "--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n class A:\n     def f(self):\n-        return 1  \n"
        "+        return 2\n"
    )


def test_indentation_offset_removed_when_search_is_deeper() -> None:
    lines = ["def f():", "    return 1"]
    found = locate(lines, ["    def f():", "        return 1"], ["    def f():", "        return 2", ""])
    assert (found.start, found.end, found.how) == (0, 2, "indentation")
    assert found.replacement == ["def f():", "    return 2", ""]


def test_parse_numbers_blocks_and_hunks_with_shifted_hints() -> None:
    text = "--- a/x.py\n+++ b/x.py\n@@ -2,2 +2,3 @@\n a\n+b\n c\n@@ -10,1 +11,1 @@\n-d\n+e\n" + block(
        "y.py", "1\n", "2\n"
    )
    edits = parse_edits(text)
    assert [(e.block, e.path, e.kind, e.hint_line) for e in edits] == [
        (1, "x.py", "hunk", 2), (2, "x.py", "hunk", 11), (3, "y.py", "search-replace", None),
    ]  # fmt: skip
    assert (edits[0].search, edits[0].replace) == ("a\nc\n", "a\nb\nc\n")


LINES = st.lists(st.text(alphabet="abc xyz", max_size=6), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(lines=LINES, data=st.data())
def test_unique_exact_search_applies_like_list_splice(tmp_path_factory: pytest.TempPathFactory, lines: list[str],
                                                      data: st.DataObject) -> None:  # fmt: skip
    root = tmp_path_factory.mktemp("ws")
    start = data.draw(st.integers(0, len(lines) - 1))
    end = data.draw(st.integers(start + 1, len(lines)))
    search = lines[start:end]
    replacement = data.draw(st.lists(st.text(alphabet="pq r", max_size=5), max_size=4))
    (root / "f.txt").write_text("".join(f"{line}\n" for line in lines))
    windows = [lines[i : i + len(search)] for i in range(len(lines) - len(search) + 1)]
    text = block("f.txt", "".join(f"{s}\n" for s in search), "".join(f"{r}\n" for r in replacement))
    if windows.count(search) == 1:
        apply_edits(root, text)
        expected = lines[:start] + replacement + lines[end:]
        assert (root / "f.txt").read_text() == "".join(f"{line}\n" for line in expected)
    else:
        with pytest.raises(EditError, match="matches"):
            apply_edits(root, text)
