"""Stage helpers for completion models: where an answer the loop prefilled is complete, and the
small repairs of what tiny models write (:mod:`llama_orch.agents._stages`)."""

from __future__ import annotations

import json
from pathlib import Path

from llama_orch.agents._edits_apply import ChangeSet, FileChange
from llama_orch.agents._stages import CLOSE_FILE, _lenient_json, block_cut, json_cut, looping_cut


def test_a_block_ends_at_its_closing_marker_or_a_new_section() -> None:
    body = "def slugify(text):\n    return text\n"
    assert block_cut(body) is None  # still going
    assert block_cut(body + ">>>>>>> FILE\n") == len(body) - 1  # before the newline that opens the marker
    assert block_cut(body + "```\n") == len(body) - 1
    assert block_cut(body + "## Notes\nmore") == len(body) - 1
    assert block_cut(">>>>>>> FILE\n") == 0


def test_a_model_repeating_one_line_is_cut_after_its_first_occurrence() -> None:
    head = "x = [\n"
    line = '    "strkit.string.stringify(text)",\n'
    assert looping_cut(head + line * 3) is None
    assert looping_cut(head + line * 4) == len(head) + len(line)
    assert block_cut(head + line * 6) == len(head) + len(line)
    # blank lines and an unfinished line are not a loop
    assert looping_cut("\n" * 10) is None
    assert looping_cut(head + line * 3 + line.rstrip("\n")) is None


def test_json_is_cut_where_the_object_the_prefix_opened_closes() -> None:
    cut = json_cut(1)
    rest = '  "description": "a } in a string", "type": "string"\n}\nand more'
    at = cut(rest)
    assert at is not None and rest[:at].endswith("}") and "and more" not in rest[:at]
    assert json.loads("{\n" + rest[:at])["type"] == "string"
    assert cut('  "a": [1, 2') is None
    assert cut('  "a": 1\n' + CLOSE_FILE) is not None  # the block closed before the object: cut there


def test_trailing_commas_in_a_json_contract_are_repaired_and_other_errors_kept(tmp_path: Path) -> None:
    def change(name: str, text: str) -> FileChange:
        return FileChange(path=name, target=tmp_path / name, before=None, after=text.encode())

    fixed = _lenient_json(
        ChangeSet(
            root=tmp_path,
            changes=(
                change("a.schema.json", '{"x-req-id": "S-1", "required": ["a",],}'),
                change("b.schema.json", '{"x-req-id": "S-1", "type": }'),
                change("c.py", "x = [1,]\n"),
            ),
        )
    )
    a, b, c = (ch.after.decode() for ch in fixed.changes)
    assert json.loads(a) == {"x-req-id": "S-1", "required": ["a"]}
    assert b == '{"x-req-id": "S-1", "type": }'  # not only trailing commas: left for the validator to refuse
    assert c == "x = [1,]\n"  # only JSON files


def test_a_worktrees_own_check_counts_code_merged_after_its_base_as_still_to_come() -> None:
    """A precheck runs in the worktree, whose tree is as of its base: a requirement whose code was
    merged since is still missing there, so its tests' failures are expected (the merge queue's check
    of the merged tree uses the run's current set)."""
    from types import SimpleNamespace

    from llama_orch.agents._loop_config import LoopConfig
    from llama_orch.agents._stages import ItemRunner
    from tests.agents.test_pycheck import _item

    env = SimpleNamespace(config=LoopConfig(), open_requirements={"TINY-0006"}, known_ids=("TINY-0001", "TINY-0006"))
    runner = ItemRunner(env, ())  # type: ignore[arg-type]
    item = _item("test", file="tests/test_tiny_0006.py")
    at_base = runner._context(item, ["tests/test_tiny_0006.py"], frozenset({"TINY-0001", "TINY-0006"}))
    live = runner._context(item, ["tests/test_tiny_0006.py"])
    assert at_base.open_requirements() == {"TINY-0001", "TINY-0006"}
    assert live.open_requirements() == {"TINY-0006"}
    env.open_requirements.discard("TINY-0006")  # merged meanwhile: the live view follows, the base one not
    assert live.open_requirements() == set() and at_base.open_requirements() == {"TINY-0001", "TINY-0006"}
    assert at_base.new_test_files == ("tests/test_tiny_0006.py",)
