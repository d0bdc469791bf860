"""Spec parsing on messy real-world Markdown (tests/agents/specs/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_orch.agents import Level, load_spec, parse_spec, strongest_level

SPECS = Path(__file__).parent / "specs"
AUTH = (SPECS / "auth.md").read_text(encoding="utf-8")

# id, level, line, form, innermost section
EXPECTED_AUTH = [
    ("AUTH-0001", "MUST", 9, "list-item", "1. Tokens"),
    ("AUTH-0002", "MUST NOT", 10, "list-item", "1. Tokens"),
    ("AUTH-0003", "SHOULD", 12, "list-item", "1. Tokens"),
    ("AUTH-0004", "MUST", 15, "list-item", "1. Tokens"),
    ("AUTH-0005", "SHALL", 23, "list-item", "1. Tokens"),
    ("AUTH-0006", "RECOMMENDED", 30, "list-item", "1. Tokens"),
    ("AUTH-0007", "MAY", 31, "list-item", "1. Tokens"),
    ("AUTH-0010", "MUST", 41, "heading", "2. Sessions"),
    ("AUTH-0011", "MUST", 54, "table-row", "Notes"),
    ("AUTH-0012", "SHOULD", 55, "table-row", "Notes"),
    ("AUTH-0013", "MUST", 59, "paragraph", "Notes"),
    ("AUTH-0014", "MUST", 61, "paragraph", "Notes"),
    ("AUTH-0015", None, 65, "list-item", "3. Legacy"),
    ("AUTH-0001", "MUST", 66, "list-item", "3. Legacy"),
]


def summary(text: str) -> list[tuple[str, str | None, int, str, str]]:
    return [(r.id, r.level.value if r.level else None, r.line, r.form, r.section[-1]) for r in parse_spec(text)]


def test_messy_spec_statements_levels_lines_and_sections() -> None:
    assert summary(AUTH) == EXPECTED_AUTH


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda t: t.replace("\n", "\r"), id="cr"),
        pytest.param(lambda t: "\ufeff" + t.replace("\n", "\r\n"), id="bom-crlf"),
        pytest.param(lambda t: t.replace("\n", "   \n"), id="trailing-spaces"),
    ],
)
def test_line_endings_bom_and_trailing_space_change_nothing(variant: object) -> None:
    assert callable(variant)
    base = parse_spec(AUTH)
    other = parse_spec(variant(AUTH))
    assert [(r.id, r.text, r.level, r.line, r.section) for r in other] == [
        (r.id, r.text, r.level, r.line, r.section) for r in base
    ]


def test_ids_in_code_comments_and_mentions_are_not_statements() -> None:
    ids = set(parse_spec(AUTH).ids)
    # 0093..0099: table code span, HTML comments, tilde and backtick fences, indented code; 9000 in a
    # top comment; 0008 is mentioned mid-sentence.
    for fake in ("AUTH-0008", "AUTH-0093", "AUTH-0094", "AUTH-0095", "AUTH-0096", "AUTH-0097", "AUTH-0098",
                 "AUTH-0099", "AUTH-9000"):  # fmt: skip
        assert fake not in ids


def test_statement_texts() -> None:
    by_id = parse_spec(AUTH).by_id
    assert by_id["AUTH-0001"].text == "The service MUST reject expired tokens."
    # soft line breaks, code spans kept, a later nested list without ids belongs to the item
    assert by_id["AUTH-0002"].text == (
        "The service MUST NOT accept tokens signed with `alg: none`; it SHOULD log such attempts. "
        "Sub-note without an id: by indentation it belongs to the second item."
    )
    assert by_id["AUTH-0003"].text == "Rejections SHOULD carry the `WWW-Authenticate` header. Clients MAY retry once."
    assert "POST /token" not in by_id["AUTH-0004"].text  # the fence is not text
    assert by_id["AUTH-0007"].text == "(MAY) Tokens MAY carry a `tenant` claim."
    assert by_id["AUTH-0010"].text == (
        "Session fixation After login the service MUST issue a new session id. The old one SHOULD be revoked "
        "at once. It MAY keep a grace period of 5 s."
    )
    assert by_id["AUTH-0011"].text == "MUST | Idle sessions expire after 30 minutes."
    assert by_id["AUTH-0013"].text == "Quoted requirements in a blockquote count: the audit log MUST be append-only."


def test_issues_name_duplicates_and_missing_levels() -> None:
    spec = parse_spec(AUTH, "auth.md")
    issues = [(i.kind, i.id, i.line) for i in spec.issues]
    assert issues == [("no-level", "AUTH-0015", 65), ("duplicate-id", "AUTH-0001", 66)]
    assert "first at auth.md:9" in spec.issues[1].message
    assert [r.line for r in spec.duplicates()["AUTH-0001"]] == [9, 66]
    assert spec.get("AUTH-0001") is not None
    assert spec.get("AUTH-0001").line == 9  # type: ignore[union-attr]


def test_custom_id_pattern_on_seed_style_spec() -> None:
    text = (SPECS / "orchestrator.md").read_text(encoding="utf-8")
    assert parse_spec(text).ids == []  # the default pattern does not take OC-CLI-2001
    spec = parse_spec(text, id_pattern=r"[A-Z]+(?:-[A-Z]+)*-\d{4}")
    assert [(r.id, r.level) for r in spec] == [
        ("OC-CLI-2001", Level.MUST), ("OC-CLI-2002", Level.MUST), ("OC-CLI-2005", Level.SHOULD),
        ("OC-CLI-2302", Level.MAY),
    ]  # fmt: skip
    tail = "`task_id`, `session_id`, `workload`, `prompt`/`inputs`, `max_tokens`."
    assert spec.by_id["OC-CLI-2001"].text.endswith(tail)


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("- [AUTH-0001] x MUST y", "AUTH-0001"),
        ("- AUTH-0001: x MUST y", "AUTH-0001"),
        ("- AUTH-0001 - x MUST y", "AUTH-0001"),
        ("- AUTH-0001 \u2013 x MUST y", "AUTH-0001"),
        ("- AUTH-0001 (MUST) x", "AUTH-0001"),
        ("- **AUTH-0001** x MUST y", "AUTH-0001"),
        ("- **AUTH-0001:** x MUST y", "AUTH-0001"),
        ("- __AUTH-0001__: x MUST y", "AUTH-0001"),
        ("- [AUTH-0001](#auth-0001) x MUST y", "AUTH-0001"),
        ("1. [AUTH-0001] x MUST y", "AUTH-0001"),
        ("# AUTH-0001 x MUST y", "AUTH-0001"),
        ("Setext AUTH-0001\n===", None),
        ("AUTH-0001\n===\n\nbody MUST", "AUTH-0001"),
        ("- AUTH-0001 x MUST y", None),  # bare id + text: headings only
        ("- xAUTH-0001: x MUST y", None),
        ("- AUTH-00011: x MUST y", None),
        ("- auth-0001: x MUST y", None),
        ("- [ ] [AUTH-0001] task list MUST", "AUTH-0001"),
        ("- [x] AUTH-0001: done MUST", "AUTH-0001"),
        ("- `AUTH-0001`: code MUST", None),
        ("- <!-- AUTH-0001 --> MUST", None),
        ("    [AUTH-0001] indented code MUST", None),
        ("```\n[AUTH-0001] fenced MUST\n```", None),
        ("> - [AUTH-0001] quoted list MUST", "AUTH-0001"),
    ],
)
def test_accepted_forms(line: str, found: str | None) -> None:
    assert parse_spec(line + "\n").ids == ([found] if found else [])


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("x MUST y", Level.MUST),
        ("x MAY y but MUST NOT z", Level.MUST_NOT),
        ("x SHOULD y, x SHALL z", Level.SHALL),
        ("it is NOT RECOMMENDED", Level.NOT_RECOMMENDED),
        ("OPTIONAL feature", Level.OPTIONAL),
        ("REQUIRED field, SHOULD NOT", Level.REQUIRED),
        ("lower-case must and may do not count", None),
        ("MUSTARD and MAYBE do not count", None),
    ],
)
def test_strongest_level(text: str, level: Level | None) -> None:
    assert strongest_level(text) == level


def test_load_spec_from_folder_names_sources_and_finds_cross_file_duplicates(tmp_path: Path) -> None:
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "one.md").write_text("- [XY-0001] one MUST\n", encoding="utf-8")
    (tmp_path / "docs" / "two.md").write_bytes("\ufeff- [XY-0002] two MAY\r\n- [XY-0001] again MUST\r\n".encode())
    (tmp_path / "docs" / "notes.txt").write_text("- [XY-0003] not markdown MUST\n", encoding="utf-8")
    spec = load_spec([tmp_path / "docs"], root=tmp_path)
    assert [(r.id, r.source, r.line) for r in spec] == [
        ("XY-0001", "docs/a/one.md", 1), ("XY-0002", "docs/two.md", 1), ("XY-0001", "docs/two.md", 2),
    ]  # fmt: skip
    assert [i.kind for i in spec.issues] == ["duplicate-id"]
