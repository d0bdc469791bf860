"""One redactor for everything that is written: logs, narration, artifacts, task records, errors.

Three layers, applied in this order to any text:

1. **literals** — exact secrets known to this process (a canary, a configured upstream key):
   replaced wherever they appear, whatever surrounds them;
2. **built-in shapes** — what commonly leaks: PEM private keys, provider API keys (``sk-…``,
   ``ghp_…``, ``hf_…``, ``AKIA…``, ``AIza…``, Slack/GitLab tokens), JWTs, then the *value* of
   ``Bearer x``, ``password=x``, ``api_key: x`` and the password in ``scheme://user:pass@host``;
3. **configured patterns** — operator regexes (``policy.redaction.patterns``); a pattern with a
   group named ``secret`` hides only that group, otherwise the whole match.

A pattern list, not a guarantee: it catches what is known or shaped like a secret. Structured
values (:meth:`Redactor.redact_value`) also hide every value under a key that names a secret
(``authorization``, ``password``, ``api_key``…), whatever the value looks like.

>>> Redactor().clean("curl -H 'Authorization: Bearer abcdefgh12345678' https://x")
"curl -H 'Authorization: Bearer [REDACTED]' https://x"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from llama_orch.errors import ConfigError

__all__ = ["REDACTED", "Redactor", "default_redactor", "redact_secrets", "set_default_redactor"]

REDACTED = "[REDACTED]"

# Each built-in pattern with the literals one of which any match must contain (case as the pattern
# matches): ``str.__contains__`` skips a pattern whose literals are absent far faster than the regex
# engine can scan for it (most of these start with ``\b``, which defeats its literal-prefix search).
# A task's whole event log is redacted when it ends, so this matters: ~0.1 ms instead of ~20 ms a
# pattern on 200 KB of token events.
_WHOLE: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
     ("-----BEGIN ",)),
    (re.compile(r"\b(?:sk|rk|pk)-(?:[A-Za-z0-9]+-)?[A-Za-z0-9_-]{16,}"), ("sk-", "rk-", "pk-")),  # OpenAI/Stripe style
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"),
     ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), ("glpat-",)),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), ("hf_",)),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("AKIA", "ASIA")),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), ("AIza",)),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyJ",)),  # JWT
]  # fmt: skip
_GATES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("sk-", "rk-", "pk-"): ("k-",),
    ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"): ("_",),
    ("AKIA", "ASIA"): ("IA",),
}
"""Substrings all of a pattern's literals share: one scan for them before one scan a literal (each
``in`` over a 150 KB event log is ~0.1 ms, and most text has none of these)."""
# A count of tokens (``"max_tokens": 2000``, ``prompt_tokens=4096``): the plural word with a number.
_TOKEN_COUNT = r"tokens[\"']?\s*[:=]\s*[\"']?\d+(?![\w.-])"
_SECRET_WORD = r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?"
# Keep the name, hide the value: "Authorization: Bearer x", "api_key = 'x'", "PASSWORD=x", URLs with user:pass@.
# The name's own prefix (``my_api_key``) is kept as it is, so a match starts at the secret word; the
# look-ahead on its first letters (case-insensitive like the word) lets the engine skip other positions fast.
# Each has a case-insensitive guard (a match implies one) or literals, as above.
_VALUE: list[tuple[re.Pattern[str], re.Pattern[str] | tuple[str, ...]]] = [
    (re.compile(r"(?i)(\b(?:bearer|basic)\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}"), re.compile(r"(?i)bearer|basic")),
    (re.compile(rf"(?i)(?=[pstac])(?!{_TOKEN_COUNT})({_SECRET_WORD}[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;&]{{4,}}"),
     ()),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)(?!\[REDACTED\])[^\s@/]+(?=@)"), ("://",)),
]  # fmt: skip
_GUARD_WORDS = {"(?i)bearer|basic": ("bearer", "basic")}
"""The lower-case words of each regex guard above, for ASCII text."""
_WORD_HITS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (start, re.compile(rf"{word}[\"']?\s*[:=]"))
    for start, word in (
        ("passw", r"passw(?:or)?ds?"),
        ("secret", r"secrets?"),
        ("token", r"tokens?"),
        ("api", r"api[_-]?keys?"),
        ("access", r"access[_-]?keys?"),
        ("private", r"private[_-]?keys?"),
        ("credential", r"credentials?"),
    )
)
"""Where the secret-word pattern could match, in ASCII lower case: each secret word (the
alternatives of ``_SECRET_WORD``) and its ``:``/``=``, one literal-prefixed scan a word."""


def _matches_at_a_word(pattern: re.Pattern[str], text: str, lower: str) -> bool:
    """Whether ``pattern`` (which only matches where a secret word begins) matches anywhere in
    ``text``: tried only where a secret word and its ``:`` or ``=`` are, found in ``lower`` (the
    ASCII lower case of ``text``) by one case-sensitive scan. An event log has ``token`` in every
    frame (``event: token``); trying the pattern at each costs ~40x more than this scan, and one scan
    for all the words (an alternation, which the engine tries at every p, s, t, a and c) ~5x more."""
    for start, hits in _WORD_HITS:
        if start in lower and any(pattern.match(text, hit.start()) is not None for hit in hits.finditer(lower)):
            return True
    return False


def _may_match(
    pattern: re.Pattern[str], guard: re.Pattern[str] | tuple[str, ...], text: str, lower: str | None
) -> bool:
    """Whether a ``_VALUE`` pattern can match ``text`` at all, by its guard (``lower``: the ASCII
    lower case of ``text``, None when it is not ASCII): False means skip the pattern."""
    if isinstance(guard, re.Pattern):
        if lower is not None:
            return any(lit in lower for lit in _GUARD_WORDS[guard.pattern])
        return guard.search(text) is not None
    if guard:
        return any(lit in text for lit in guard)
    return lower is None or _matches_at_a_word(pattern, text, lower)


_SECRET_KEY = re.compile(
    rf"(?i)^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|[\w.-]*{_SECRET_WORD})$"
)
_SECRET_QUERY = re.compile(
    r"(?i)^(?:[\w.-]*(?:token|secret|password|passwd|api[_-]?key|apikey|access[_-]?key|signature|sig|auth)"
    r"|key|code|x-amz-signature|x-amz-credential)$"
)
_MIN_LITERAL = 4


class Redactor:
    """Replaces secrets with ``[REDACTED]``; immutable, cheap to share, safe across threads.

    ``patterns`` are operator regexes (strings are compiled; a bad one is a :class:`ConfigError`),
    ``literals`` exact secrets (at least 4 characters; shorter ones would hide ordinary words).
    """

    def __init__(
        self, patterns: Iterable[str | re.Pattern[str]] = (), literals: Iterable[str] = (), *, builtin: bool = True
    ) -> None:
        compiled: list[re.Pattern[str]] = []
        for pattern in patterns:
            if isinstance(pattern, re.Pattern):
                compiled.append(pattern)
                continue
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ConfigError(f"redaction pattern {pattern!r} is not a valid regular expression: {exc}") from None
        self._patterns = tuple(compiled)
        self._literal_set = frozenset(lit for lit in literals if lit)
        short = [lit for lit in self._literal_set if len(lit) < _MIN_LITERAL]
        if short:
            raise ConfigError(f"redaction literals must be at least {_MIN_LITERAL} characters ({len(short)} are not)")
        ordered = sorted(self._literal_set, key=len, reverse=True)
        self._literals = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._builtin = builtin

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return self._patterns

    def extended(self, patterns: Iterable[str | re.Pattern[str]] = (), literals: Iterable[str] = ()) -> Redactor:
        """A redactor with these patterns and literals added to this one's."""
        return Redactor((*self._patterns, *patterns), (*self._literal_set, *literals), builtin=self._builtin)

    def redact(self, text: str) -> tuple[str, int]:
        """``text`` with secrets replaced, and how many replacements were made."""
        count = 0
        if self._literals is not None:
            text, n = self._literals.subn(REDACTED, text)
            count += n
        if self._builtin:
            for pattern, literals in _WHOLE:
                gate = _GATES.get(literals)
                if gate is not None and not all(part in text for part in gate):
                    continue
                if any(lit in text for lit in literals):
                    text, n = pattern.subn(REDACTED, text)
                    count += n
            # ASCII text (every JSON-encoded event log) lower-cased once: the case-insensitive
            # guards become substring searches. Other text keeps the regex guards: under (?i)
            # U+017F (long s) matches 's' and U+212A (Kelvin) 'k', which lower() does not fold.
            lower = text.lower() if text.isascii() else None
            for pattern, guard in _VALUE:
                if not _may_match(pattern, guard, text, lower):
                    continue
                text, n = pattern.subn(_keep_name, text)
                if n:
                    count += n
                    lower = text.lower() if lower is not None else None
        for pattern in self._patterns:
            text, n = pattern.subn(_replace_configured, text)
            count += n
        return text, count

    def hidden_spans(self, text: str) -> list[tuple[int, int]]:
        """Where in ``text`` the secrets are: the ``(start, end)`` spans that :meth:`redact` hides,
        sorted and merged (each pattern's matches found in ``text`` itself, not in the text the
        patterns before it left: spans that overlap are one span). For text that reaches its reader
        in pieces, e.g. a task's tokens, each of which alone is no secret (see ``redact_pieces``).
        """
        spans: list[tuple[int, int]] = []
        if self._literals is not None:
            spans.extend(m.span() for m in self._literals.finditer(text))
        if self._builtin:
            for pattern, literals in _WHOLE:
                if any(lit in text for lit in literals):
                    spans.extend(m.span() for m in pattern.finditer(text))
            lower = text.lower() if text.isascii() else None
            for pattern, guard in _VALUE:
                if not _may_match(pattern, guard, text, lower):
                    continue
                spans.extend((m.end(1), m.end()) for m in pattern.finditer(text))
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                named = "secret" in pattern.groupindex and m.group("secret") is not None
                spans.append(m.span("secret") if named else m.span())
        merged: list[tuple[int, int]] = []
        for start, end in sorted(span for span in spans if span[1] > span[0]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def redact_pieces(self, pieces: list[str]) -> list[str] | None:
        """``pieces`` (parts of one text, in order) with the secrets of their joined text hidden,
        also those split across pieces: each hidden span becomes one ``[REDACTED]`` in the piece
        where it starts, and is cut out of the pieces it runs on into. None when nothing is hidden.
        The pieces keep their number (an emptied piece is ``""``)."""
        spans = self.hidden_spans("".join(pieces))
        if not spans:
            return None
        out: list[str] = []
        offset = 0
        k = 0  # the first span that may touch the current piece
        for piece in pieces:
            start, end = offset, offset + len(piece)
            offset = end
            while k < len(spans) and spans[k][1] <= start:
                k += 1
            if k == len(spans) or spans[k][0] >= end:
                out.append(piece)
                continue
            parts: list[str] = []
            at = start
            j = k
            while j < len(spans) and spans[j][0] < end:
                s, e = spans[j]
                if s > at:
                    parts.append(piece[at - start : s - start])
                if s >= start:
                    parts.append(REDACTED)
                at = max(at, min(e, end))
                if e > end:
                    break
                j += 1
            if at < end:
                parts.append(piece[at - start :])
            out.append("".join(parts))
        return out

    def clean(self, text: str) -> str:
        """``text`` with secrets replaced (the count dropped)."""
        return self.redact(text)[0]

    def redact_value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings…) with secrets replaced, as a new value.

        Every string is redacted; the value under a key that names a secret (``authorization``,
        ``password``, ``api_key``, ``cookie``…) is replaced whole, whatever its type.
        """
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if (
                    isinstance(key, str)
                    and _SECRET_KEY.match(key)
                    and item not in (None, "", REDACTED)
                    and not (type(item) is int and key.lower().endswith("tokens"))  # max_tokens: a count
                ):
                    out[key] = REDACTED
                else:
                    out[self.clean(key) if isinstance(key, str) else key] = self.redact_value(item)
            return out
        if isinstance(value, list | tuple):
            return [self.redact_value(item) for item in value]
        return value

    def redact_url(self, url: str) -> str:
        """``url`` without its password and with secret query values (``token=``, ``sig=``…) hidden."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.clean(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            netloc = f"{self.clean(user)}:{REDACTED}@{hostport}" if ":" in userinfo else f"{REDACTED}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, REDACTED if _SECRET_QUERY.match(k) and v else self.clean(v)) for k, v in pairs], safe="[]"
            )
        return self.clean(urlunsplit((parts.scheme, netloc, parts.path, query, "")))

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with credentials (``Authorization``, ``Cookie``, ``X-Api-Key``…) hidden and the rest redacted."""
        return {k: REDACTED if _SECRET_KEY.match(k) else self.clean(v) for k, v in headers.items()}


def _keep_name(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


def _replace_configured(match: re.Match[str]) -> str:
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        whole_start = match.start()
        text = match.group(0)
        return text[: start - whole_start] + REDACTED + text[end - whole_start :]
    return REDACTED


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor (built-in shapes plus whatever :func:`set_default_redactor` installed)."""
    return _default


def set_default_redactor(redactor: Redactor) -> Redactor:
    """Install ``redactor`` as the process-wide one (orchestratord does this from its config); returns the old one."""
    global _default
    old, _default = _default, redactor
    return old


def redact_secrets(text: str) -> tuple[str, int]:
    """``text`` with secrets replaced by ``[REDACTED]`` (by the process-wide redactor), and how many.

    >>> redact_secrets("curl -H 'Authorization: Bearer abcdefgh12345678' https://x")
    ("curl -H 'Authorization: Bearer [REDACTED]' https://x", 1)
    """
    return _default.redact(text)
