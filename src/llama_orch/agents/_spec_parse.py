"""Parse Markdown specs into :class:`~._spec_model.Spec` with a CommonMark parser (markdown-it-py).

Requirement statements
----------------------
A statement is a block whose plain text *begins* with an id (``ID`` below is the configured
pattern, by default ``[A-Z][A-Z0-9]+-\\d{4}``). Plain text means inline markup removed, code
spans and inline HTML not searched for ids. Accepted forms::

    - [AUTH-0001] The service MUST reject expired tokens.        bracketed id
    - AUTH-0001: The service MUST ...                             id + separator (":" "." " - ", em or en dash)
    - AUTH-0001 (MUST): The service ...                           id + parenthetical (+ optional separator)
    - **AUTH-0001**: ...   **AUTH-0001:** ...   **AUTH-0001** ...  bold id (bold acts as brackets)
    - [AUTH-0001](#auth-0001) ...                                 linked id (the link acts as brackets)
    ### AUTH-0001 Token expiry                                    heading: a bare id is enough
    | AUTH-0001 | The service MUST ... |                          table body row with a cell in any form above

Each form works in a list item (any nesting depth), a paragraph, a blockquote, a heading and a table
cell, except the bare ``ID text`` form, which only headings accept. A task-list checkbox before
the id (``- [ ] [AUTH-0001] ...``, ``- [x] AUTH-0001: ...``) is skipped. The text of a list-item
statement also takes the item's later paragraphs and nested items that are not statements
themselves; a heading statement takes the title and the body up to the next heading; a table row
takes its other cells joined by ``" | "``.

Never searched: fenced code blocks (````` and ``~~~``, any info string, at any depth),
indented code blocks, code spans, HTML blocks and inline HTML (so HTML comments), and table
header rows. CRLF/CR line ends, a leading BOM and tabs are accepted; lines reported are 1-based
lines of the original text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from llama_orch.agents._spec_model import (
    DEFAULT_ID_PATTERN,
    Form,
    Requirement,
    Spec,
    normalize_text,
    strongest_level,
)

_CODE_OPEN, _CODE_CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_CODE_OPEN}(\\d+){_CODE_CLOSE}")
_SEP = r"(?:[:.\u2014\u2013]|-(?=\s))"
_PAREN = r"\((?P<paren>[^()]*)\)"
_TASK_BOX = re.compile(r"^\[[ xX]\]\s+")  # GitHub task-list items: "- [ ] [AUTH-0001] ..."


@dataclass
class _Draft:
    id: str
    line: int
    section: tuple[str, ...]
    form: Form
    parts: list[str] = field(default_factory=list)


class _Matchers:
    def __init__(self, id_pattern: str) -> None:
        idp = f"(?P<id>{id_pattern})"
        bare = rf"(?<![\w-]){idp}(?!\w)"
        self.id_full = re.compile(rf"\s*{idp}\s*(?P<colon>:?)\s*")
        self.statement = [
            re.compile(rf"\s*\[{idp}\]\s*(?:{_PAREN}\s*)?(?:{_SEP}\s*)?(?P<text>.*)", re.S),
            re.compile(rf"\s*{bare}\s*(?:{_PAREN}\s*)?{_SEP}\s*(?P<text>.*)", re.S),
            re.compile(rf"\s*{bare}\s*{_PAREN}\s*(?P<text>.*)", re.S),
        ]
        self.heading = re.compile(rf"\s*{bare}(?:\s+(?P<text>.*)|\s*)", re.S)

    def match(self, text: str, *, heading: bool = False) -> tuple[str, str] | None:
        """``(id, rest)`` when ``text`` starts with an id in an accepted form."""
        for regex in self.statement:
            if m := regex.fullmatch(text):
                paren = m.group("paren")
                rest = m.group("text")
                # A parenthetical keyword such as "(MUST)" belongs to the statement's meaning.
                if paren and strongest_level(paren) is not None:
                    rest = f"({paren}) {rest}"
                return m.group("id"), rest
        if heading and (m := self.heading.fullmatch(text)):
            return m.group("id"), m.group("text") or ""
        return None


class _Parser:
    def __init__(self, source: str, matchers: _Matchers) -> None:
        self.source = source
        self.m = matchers
        self.codes: list[str] = []
        self.drafts: list[_Draft] = []
        self.headings: list[tuple[int, str]] = []
        self.heading_owner: _Draft | None = None

    # -- inline text ------------------------------------------------------------------------------

    def inline(self, node: SyntaxTreeNode) -> str:
        out: list[str] = []
        self._render(node.children, out)
        return normalize_text("".join(out))

    def _render(self, nodes: Sequence[SyntaxTreeNode], out: list[str]) -> None:
        for node in nodes:
            kind = node.type
            if kind == "text":
                out.append(node.content)
            elif kind == "code_inline":
                self.codes.append(node.content)
                out.append(f"{_CODE_OPEN}{len(self.codes) - 1}{_CODE_CLOSE}")
            elif kind in ("softbreak", "hardbreak", "html_inline"):
                out.append(" ")
            elif kind in ("strong", "link"):
                inner: list[str] = []
                self._render(node.children, inner)
                text = "".join(inner)
                if m := self.m.id_full.fullmatch(text):
                    out.append(f"[{m.group('id')}]{m.group('colon')}")
                else:
                    out.append(text)
            else:  # em, s, image (its alt text), anything newer: the text inside
                self._render(node.children, out)

    def restore(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: f"`{self.codes[int(m.group(1))]}`", text)

    # -- blocks -----------------------------------------------------------------------------------

    def section(self) -> tuple[str, ...]:
        return tuple(self.restore(title) for _, title in self.headings)

    def add(self, req_id: str, rest: str, node: SyntaxTreeNode, form: Form) -> _Draft:
        draft = _Draft(req_id, node.map[0] + 1 if node.map else 0, self.section(), form, [rest] if rest else [])
        self.drafts.append(draft)
        return draft

    def walk(self, nodes: Sequence[SyntaxTreeNode], owner: _Draft | None) -> None:
        for node in nodes:
            kind = node.type
            if kind == "heading":
                self.heading(node)
            elif kind == "paragraph":
                self.paragraph(node, owner)
            elif kind == "list_item":
                self.list_item(node, owner)
            elif kind == "table":
                self.table(node)
            elif kind in ("fence", "code_block", "html_block", "hr"):
                continue
            else:  # lists, blockquotes
                self.walk(node.children, owner)

    def heading(self, node: SyntaxTreeNode) -> None:
        level = int(node.tag[1:])
        title = self.inline(node.children[0]) if node.children else ""
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        found = self.m.match(title, heading=True)
        self.heading_owner = self.add(found[0], found[1], node, "heading") if found else None
        self.headings.append((level, title))

    def paragraph(self, node: SyntaxTreeNode, owner: _Draft | None) -> None:
        text = self.inline(node.children[0]) if node.children else ""
        if found := self.m.match(text):
            self.add(found[0], found[1], node, "paragraph")
        elif (target := owner or self.heading_owner) is not None and text:
            target.parts.append(text)

    def list_item(self, node: SyntaxTreeNode, owner: _Draft | None) -> None:
        children = list(node.children)
        if children and children[0].type == "paragraph":
            first = children[0]
            text = self.inline(first.children[0]) if first.children else ""
            if found := self.m.match(_TASK_BOX.sub("", text, count=1)):
                owner = self.add(found[0], found[1], node, "list-item")
                children = children[1:]
        self.walk(children, owner)

    def table(self, node: SyntaxTreeNode) -> None:
        for part in node.children:
            if part.type != "tbody":
                continue  # the header row names columns
            for row in part.children:
                cells = [self.inline(cell.children[0]) if cell.children else "" for cell in row.children]
                for i, cell in enumerate(cells):
                    found = self.m.match(cell) or self._bare_cell(cell)
                    if found:
                        others = [found[1], *cells[:i], *cells[i + 1 :]]
                        self.add(found[0], " | ".join(c for c in others if c), row, "table-row")
                        break

    def _bare_cell(self, cell: str) -> tuple[str, str] | None:
        m = self.m.id_full.fullmatch(cell)
        return (m.group("id"), "") if m else None

    def finish(self) -> Spec:
        reqs = []
        for d in self.drafts:
            scan = normalize_text(" ".join(d.parts))
            reqs.append(
                Requirement(
                    id=d.id, text=self.restore(scan), level=strongest_level(scan), source=self.source,
                    line=d.line, section=d.section, form=d.form,
                )
            )  # fmt: skip
        return Spec(requirements=tuple(reqs))


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse_spec(text: str, source: str = "<string>", *, id_pattern: str = DEFAULT_ID_PATTERN) -> Spec:
    """Requirements stated in the Markdown ``text`` (see the module docstring for the forms).

    >>> spec = parse_spec("- [AUTH-0001] The service MUST reject expired tokens.\\n")
    >>> [(r.id, r.level.value, r.line) for r in spec]
    [('AUTH-0001', 'MUST', 1)]
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    parser = _Parser(source, _Matchers(id_pattern))
    parser.walk(SyntaxTreeNode(_markdown().parse(text)).children, None)
    return parser.finish()


def load_spec(
    paths: Iterable[str | Path], *, root: str | Path | None = None, id_pattern: str = DEFAULT_ID_PATTERN
) -> Spec:
    """One :class:`Spec` from Markdown files and folders (``**/*.md`` in each folder, sorted).

    Sources are named relative to ``root`` when given (POSIX separators)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.md")) if p.is_dir() else [p])
    base = Path(root).resolve() if root is not None else None
    specs = []
    for f in files:
        name = f.resolve().relative_to(base).as_posix() if base is not None else f.as_posix()
        specs.append(parse_spec(f.read_text(encoding="utf-8-sig"), name, id_pattern=id_pattern))
    return Spec.merge(specs)
