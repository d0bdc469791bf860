"""Plans from real repositories: work items per requirement, waves, serialised files, re-plans show what is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_orch.agents import LoopConfig, SpecError, plan_repository
from llama_orch.agents._git import Git
from tests.agents._strkit import commit_all, git, strkit_repo

TEST_0002 = """import pytest

from strkit.case import snake_case


@pytest.mark.req("STR-0002")
def test_snake():
    assert snake_case("HelloWorld") == "hello_world"
"""
CONTRACT_0001 = (
    '{"$schema": "https://json-schema.org/draft/2020-12/schema", "x-req-id": "STR-0001", "type": "object"}\n'
)


async def plan_of(repo: Path, config: LoopConfig | None = None):  # type: ignore[no-untyped-def]
    head = git(repo, "rev-parse", "HEAD")
    return await plan_repository(Git(repo), head, config or LoopConfig())


async def test_a_spec_alone_plans_contract_test_and_code_per_requirement(tmp_path: Path) -> None:
    repo = strkit_repo(tmp_path)
    result = await plan_of(repo)
    plan = result.plan
    assert plan.counts() == {"contract": 8, "test": 8, "code": 8}
    assert [len(w) for w in plan.waves] == [8, 8, 8]
    assert plan.package == "strkit" and plan.source_root == "src"
    assert plan.tests_status == "pass"  # no tests yet: pytest collects nothing, which is no failure
    test = plan.item("test:STR-0001")
    assert test.depends_on == ("contract:STR-0001",) and test.expect == "fail" and test.wave == 2
    assert test.files == ("tests/test_str_0001.py",)
    code = plan.item("code:STR-0003")
    assert code.depends_on == ("contract:STR-0003", "test:STR-0003") and code.wave == 3
    assert code.target.file == "src/strkit/trim.py" and code.target.callable == "truncate"
    assert code.target.module == "strkit.trim" and not code.target.exists
    assert plan.item("contract:STR-0008").files == ("contracts/str-0008.schema.json",)
    assert result.spec_files == ("specs/strkit.md",)
    assert "STR-0007" in plan.item("code:STR-0007").inputs.requirement


async def test_a_replan_after_progress_shows_only_what_is_left(tmp_path: Path) -> None:
    repo = strkit_repo(tmp_path, files={
        "contracts/str-0001.schema.json": CONTRACT_0001,
        "tests/test_str_0002.py": TEST_0002,  # fails today: strkit.case does not exist
        "src/strkit/words.py": "def word_count(text):\n    return len(text.split())\n",  # STR-0005's code, untested
        "src/strkit/trim.py": "def truncate(text, width):\n    return text\n",
        "tests/test_str_0003.py": TEST_0002.replace("STR-0002", "STR-0003").replace(
            "from strkit.case import snake_case", "from strkit.trim import truncate").replace(
            'assert snake_case("HelloWorld") == "hello_world"', 'assert truncate("ab", 5) == "ab"'),
    })  # fmt: skip
    plan = (await plan_of(repo)).plan
    ids = {it.id for it in plan.items}
    assert "contract:STR-0001" not in ids and {"test:STR-0001", "code:STR-0001"} <= ids
    assert "test:STR-0002" not in ids and "code:STR-0002" in ids
    assert plan.item("code:STR-0002").depends_on == ("contract:STR-0002",)
    assert any("tests/test_str_0002.py: ModuleNotFoundError" in f for f in plan.item("code:STR-0002").inputs.failing)
    assert "code:STR-0003" not in ids and "test:STR-0003" not in ids  # tested, and the test passes
    assert plan.item("test:STR-0005").expect == "pass" and "code:STR-0005" not in ids
    assert plan.tests_status == "fail"
    # Everything done for a requirement: it is listed as done.
    (repo / "contracts" / "str-0003.schema.json").write_text(CONTRACT_0001.replace("0001", "0003"))
    commit_all(repo, "contract for STR-0003")
    assert "STR-0003" in (await plan_of(repo)).plan.done


async def test_items_writing_one_file_are_serialised(tmp_path: Path) -> None:
    spec = (
        "# lib\n\nPackage: `strkit`\n\n- [STR-0001] `strkit.text.upper(s)` MUST upper-case.\n"
        "- [STR-0002] `strkit.text.lower(s)` MUST lower-case.\n- [STR-0003] `strkit.other.f(x)` MUST be f.\n"
    )
    repo = strkit_repo(tmp_path, files={"specs/strkit.md": spec})
    plan = (await plan_of(repo)).plan
    assert "code:STR-0001" in plan.item("code:STR-0002").depends_on  # both write src/strkit/text.py
    assert "code:STR-0002" not in plan.item("code:STR-0003").depends_on
    assert plan.item("code:STR-0002").wave == plan.item("code:STR-0001").wave + 1


async def test_stage_narrowing(tmp_path: Path) -> None:
    repo = strkit_repo(tmp_path)
    plan = (await plan_of(repo)).plan
    tests_only = plan.only(["test"])
    assert tests_only.counts() == {"contract": 0, "test": 8, "code": 0}
    assert all(it.depends_on == () and it.wave == 1 for it in tests_only.items)
    code_only = plan.only(["code"])
    assert code_only.items == [] and len(code_only.warnings) == 8
    assert "tests plan" in code_only.warnings[0]


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"specs/strkit.md": "# nothing stated\n"}, "state no requirement"),
        ({"specs/extra.md": "- [STR-0001] The library MUST exist twice.\n"}, "duplicate requirement ids: STR-0001"),
    ],
)
async def test_specs_that_cannot_be_planned(tmp_path: Path, files: dict[str, str], says: str) -> None:
    repo = strkit_repo(tmp_path, files=files)
    with pytest.raises(SpecError, match=says):
        await plan_of(repo)


async def test_no_specs(tmp_path: Path) -> None:
    repo = strkit_repo(tmp_path)
    git(repo, "rm", "-r", "--quiet", "specs")
    commit_all(repo, "no spec")
    with pytest.raises(SpecError, match="no specs found"):
        await plan_of(repo)
