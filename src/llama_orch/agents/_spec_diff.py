"""Compare two versions of a spec: added, removed, changed, renumbered and moved requirements."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from llama_orch.agents._spec_model import Level, Requirement, Spec


class Changed(BaseModel):
    """Same id, different text (and perhaps level)."""

    model_config = ConfigDict(frozen=True)

    id: str
    old_text: str
    new_text: str
    old_level: Level | None
    new_level: Level | None


class Renumbered(BaseModel):
    """Same text under a new id: the old id disappeared and the new one appeared."""

    model_config = ConfigDict(frozen=True)

    old_id: str
    new_id: str
    text: str


class Moved(BaseModel):
    """Same id and text in another file or section."""

    model_config = ConfigDict(frozen=True)

    id: str
    old_location: str
    new_location: str


class SpecDiff(BaseModel):
    """What changed between two versions; every id is in exactly one of the lists."""

    model_config = ConfigDict(frozen=True)

    added: list[str]
    removed: list[str]
    changed: list[Changed]
    renumbered: list[Renumbered]
    moved: list[Moved]
    unchanged: list[str]

    @property
    def stable(self) -> bool:
        """No requirement added, removed, reworded or renumbered (moves are allowed)."""
        return not (self.added or self.removed or self.changed or self.renumbered)


def _where(req: Requirement) -> str:
    return " > ".join((req.source, *req.section))


def diff_specs(old: Spec, new: Spec) -> SpecDiff:
    """Compare by id (each id's first statement), then pair removed with added ids by identical text.

    Renumbering is recognised only between an id that disappeared and one that appeared, in
    document order when several share a text; a reworded *and* renumbered statement shows as
    removed + added.

    >>> a = Spec(requirements=(Requirement(id="A-0001", text="X MUST y.", level=None, source="s", line=1,
    ...     section=(), form="paragraph"),))
    >>> b = Spec(requirements=(a.requirements[0].model_copy(update={"id": "A-0002"}),))
    >>> diff_specs(a, b).renumbered[0].new_id
    'A-0002'
    """
    before, after = old.by_id, new.by_id
    changed: list[Changed] = []
    moved: list[Moved] = []
    unchanged: list[str] = []
    for req_id, was in before.items():
        now = after.get(req_id)
        if now is None:
            continue
        if was.text != now.text:
            changed.append(
                Changed(id=req_id, old_text=was.text, new_text=now.text, old_level=was.level, new_level=now.level)
            )
        elif _where(was) != _where(now):
            moved.append(Moved(id=req_id, old_location=_where(was), new_location=_where(now)))
        else:
            unchanged.append(req_id)
    gone = [i for i in before if i not in after]
    fresh = [i for i in after if i not in before]
    by_text: dict[str, list[str]] = {}
    for req_id in fresh:
        by_text.setdefault(after[req_id].text, []).append(req_id)
    renumbered: list[Renumbered] = []
    removed: list[str] = []
    for req_id in gone:
        text = before[req_id].text
        candidates = by_text.get(text)
        if text and candidates:
            new_id = candidates.pop(0)
            renumbered.append(Renumbered(old_id=req_id, new_id=new_id, text=text))
        else:
            removed.append(req_id)
    paired = {r.new_id for r in renumbered}
    added = [i for i in fresh if i not in paired]
    return SpecDiff(
        added=added, removed=removed, changed=changed, renumbered=renumbered, moved=moved, unchanged=unchanged
    )
