"""Property tests: specs rendered in every accepted form parse back to the same ids, levels and
texts; edits applied to a spec keep the ids they do not touch stable."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llama_orch.agents import Level, apply_edits, diff_specs, parse_spec

FORMS = ("bracket", "bold", "bold-colon-inside", "colon", "dash", "paren", "heading", "table", "nested", "ordered")
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
LINE_ENDS = st.sampled_from(["\n", "\r\n"])


@dataclass(frozen=True)
class Req:
    id: str
    level: Level
    text: str
    form: str


@st.composite
def requirements(draw: st.DrawFn) -> list[Req]:
    count = draw(st.integers(1, 12))
    prefixes = st.from_regex(r"[A-Z][A-Z0-9]{1,5}", fullmatch=True)
    ids = draw(
        st.lists(st.builds("{}-{:04d}".format, prefixes, st.integers(0, 9999)), min_size=count, max_size=count,
                 unique=True)
    )  # fmt: skip
    reqs = []
    for n, req_id in enumerate(ids):
        level = draw(st.sampled_from(list(Level)))
        before = draw(st.lists(WORDS, max_size=4))
        after = draw(st.lists(WORDS, max_size=4))
        text = " ".join([*before, "subject", level.value, *after, f"r{n}."])
        reqs.append(Req(req_id, level, text, draw(st.sampled_from(FORMS))))
    return reqs


DISTRACTORS = [
    "```python\n# [FAKE-0001] fenced MUST be ignored\n```",
    "~~~\n- [FAKE-0002] tilde fence MUST be ignored\n~~~",
    "<!--\n- [FAKE-0003] commented MUST be ignored\n-->",
    "Prose mentions FAKE-0004 and `FAKE-0005` in passing.",
    "A paragraph ends any list above.\n\n    [FAKE-0006] indented code MUST be ignored",
    "- a list item without an id\n  ```\n  [FAKE-0007] nested fence\n  ```",
]


def render(req: Req) -> str:
    t = req.text
    return {
        "bracket": f"- [{req.id}] {t}",
        "bold": f"- **{req.id}**: {t}",
        "bold-colon-inside": f"* **{req.id}:** {t}",
        "colon": f"- {req.id}: {t}",
        "dash": f"- {req.id} — {t}",
        "paren": f"- {req.id} ({req.level.value}): {t}",
        "heading": f"### {req.id}\n\n{t}\n\n### Next",
        "table": f"| Id | Text |\n|---|---|\n| {req.id} | {t} |",
        "nested": f"- Group\n  - [{req.id}] {t}",
        "ordered": f"1. [{req.id}] {t}",
    }[req.form]


def expected_text(req: Req) -> str:
    return f"({req.level.value}) {req.text}" if req.form == "paren" else req.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=requirements(), noise=st.lists(st.sampled_from(DISTRACTORS), max_size=4), eol=LINE_ENDS,
       bom=st.booleans())  # fmt: skip
def test_render_then_parse_round_trips(reqs: list[Req], noise: list[str], eol: str, bom: bool) -> None:
    blocks = ["# Generated spec", *noise, *(render(r) for r in reqs), *noise]
    text = ("\ufeff" if bom else "") + "\n\n".join(blocks).replace("\n", eol) + eol
    spec = parse_spec(text)
    assert [(r.id, r.level, r.text) for r in spec] == [(r.id, r.level, expected_text(r)) for r in reqs]
    assert spec.issues == []
    lines = text.removeprefix("\ufeff").split(eol)
    for parsed in spec:
        assert parsed.id in lines[parsed.line - 1]


OPS = st.sampled_from(["keep", "keep", "reword", "delete", "renumber"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(reqs=requirements(), data=st.data())
def test_edits_applied_to_a_spec_keep_unchanged_ids_stable(
    tmp_path_factory: pytest.TempPathFactory, reqs: list[Req], data: st.DataObject
) -> None:
    """Apply random edits to a spec file with the edit applier, parse again: the diff names exactly
    what the edits did, and every untouched requirement keeps its id, text and level."""
    root = tmp_path_factory.mktemp("spec")
    head = "# Generated spec\n\n"
    (root / "spec.md").write_text(head + "\n\n".join(render(r) for r in reqs) + "\n", encoding="utf-8")
    old = parse_spec((root / "spec.md").read_text(encoding="utf-8"))
    taken = {r.id for r in reqs}
    expect: dict[str, list[str]] = {"keep": [], "reword": [], "delete": [], "added": []}
    renumbered: list[tuple[str, str]] = []
    blocks = []
    for n, req in enumerate(reqs):
        op = data.draw(OPS)
        new_id = f"NEW{n}-{n:04d}"
        if op == "keep":
            expect["keep"].append(req.id)
            continue
        if op == "reword":
            expect["reword"].append(req.id)
            new = Req(req.id, req.level, req.text.replace("subject", "object"), req.form)
        elif op == "renumber":
            renumbered.append((req.id, new_id))
            new = Req(new_id, req.level, req.text, req.form)
        else:
            expect["delete"].append(req.id)
        replacement = "" if op == "delete" else render(new) + "\n"
        blocks.append(f"spec.md\n<<<<<<< SEARCH\n{render(req)}\n=======\n{replacement}>>>>>>> REPLACE\n")
    fresh = [Req(f"ADD{k}-{k:04d}", Level.SHOULD, f"added SHOULD a{k}.", "bracket")
             for k in range(data.draw(st.integers(0, 3)))]  # fmt: skip
    assert not taken & {r.id for r in fresh}
    if fresh:
        expect["added"] = [r.id for r in fresh]
        additions = "".join(render(r) + "\n\n" for r in fresh)
        blocks.append(
            f"spec.md\n<<<<<<< SEARCH\n# Generated spec\n=======\n# Generated spec\n\n{additions}>>>>>>> REPLACE\n"
        )
    if blocks:
        apply_edits(root, "\n".join(blocks))
    new_spec = parse_spec((root / "spec.md").read_text(encoding="utf-8"))
    diff = diff_specs(old, new_spec)
    assert sorted(diff.unchanged + [m.id for m in diff.moved]) == sorted(expect["keep"])
    assert [c.id for c in diff.changed] == expect["reword"]
    assert diff.removed == expect["delete"]
    assert [(r.old_id, r.new_id) for r in diff.renumbered] == renumbered
    assert sorted(diff.added) == sorted(expect["added"])
    for req_id in expect["keep"]:
        was, now = old.by_id[req_id], new_spec.by_id[req_id]
        assert (now.text, now.level, now.form) == (was.text, was.level, was.form)
