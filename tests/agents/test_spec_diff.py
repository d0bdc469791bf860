"""Comparing two versions of a spec."""

from __future__ import annotations

from llama_orch.agents import Level, diff_specs, parse_spec

OLD = """\
# Spec

## Tokens

- [AUTH-0001] The service MUST reject expired tokens.
- [AUTH-0002] The service SHOULD log rejections.
- [AUTH-0003] Clients MAY cache tokens.
- [AUTH-0004] Tokens MUST be signed.

## Sessions

- [AUTH-0005] Sessions MUST expire.
"""

NEW = """\
# Spec

## Tokens

- [AUTH-0001] The service MUST reject expired tokens.
- [AUTH-0002] The service MUST log rejections.
- [AUTH-0014] Tokens MUST be signed.
- [AUTH-0006] Refresh tokens MUST be single-use.

## Sessions

- [AUTH-0003] Clients MAY cache tokens.
"""


def test_diff_names_every_kind_of_change() -> None:
    diff = diff_specs(parse_spec(OLD, "spec.md"), parse_spec(NEW, "spec.md"))
    assert diff.unchanged == ["AUTH-0001"]
    assert [(c.id, c.old_level, c.new_level) for c in diff.changed] == [("AUTH-0002", Level.SHOULD, Level.MUST)]
    assert diff.changed[0].new_text == "The service MUST log rejections."
    assert [(r.old_id, r.new_id) for r in diff.renumbered] == [("AUTH-0004", "AUTH-0014")]
    assert diff.removed == ["AUTH-0005"]
    assert diff.added == ["AUTH-0006"]
    assert [(m.id, m.old_location, m.new_location) for m in diff.moved] == [
        ("AUTH-0003", "spec.md > Spec > Tokens", "spec.md > Spec > Sessions")
    ]
    assert not diff.stable


def test_identical_specs_are_stable_whatever_the_layout() -> None:
    relaid = OLD.replace("- [AUTH-0001] The service MUST reject expired tokens.",
                         "- **AUTH-0001**: The service MUST\n  reject   expired tokens.")  # fmt: skip
    diff = diff_specs(parse_spec(OLD), parse_spec(relaid))
    assert diff.stable
    assert diff.unchanged == ["AUTH-0001", "AUTH-0002", "AUTH-0003", "AUTH-0004", "AUTH-0005"]


def test_renumbering_pairs_same_texts_in_document_order() -> None:
    old = parse_spec("- [A1-0001] X MUST y.\n- [A1-0002] X MUST y.\n")
    new = parse_spec("- [A1-0011] X MUST y.\n- [A1-0012] X MUST y.\n- [A1-0013] X MUST y.\n")
    diff = diff_specs(old, new)
    assert [(r.old_id, r.new_id) for r in diff.renumbered] == [("A1-0001", "A1-0011"), ("A1-0002", "A1-0012")]
    assert diff.added == ["A1-0013"]
    assert diff.removed == []


def test_reworded_and_renumbered_is_removed_plus_added() -> None:
    diff = diff_specs(parse_spec("- [A1-0001] X MUST y.\n"), parse_spec("- [A1-0002] X MUST z.\n"))
    assert (diff.removed, diff.added, diff.renumbered) == (["A1-0001"], ["A1-0002"], [])
