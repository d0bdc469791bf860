"""The one redactor: built-in shapes, literals, configured patterns, structured values, URLs, headers."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.agents import redact_secrets as agents_redact
from llama_orch.agents._redact import redact_secrets as agents_module_redact
from llama_orch.errors import ConfigError
from llama_orch.policy import (
    REDACTED,
    RedactionConfig,
    Redactor,
    default_redactor,
    redact_secrets,
    set_default_redactor,
)

CANARY = "canary-7f3e9b1d4c"


def test_the_agents_name_is_the_same_redactor() -> None:
    assert agents_redact is redact_secrets and agents_module_redact is redact_secrets


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("key sk-proj-abcdefghijklmnop1234", "sk-proj-abcdefghijklmnop1234"),
        ("hf_abcdefghijklmnopqrstuvwxyz", "hf_abcdefghijklmnopqrstuvwxyz"),
        ("xoxb-1234567890-abcdef", "xoxb-1234567890-abcdef"),
        ("glpat-abcdefghijklmnopqrstu", "glpat-abcdefghijklmnopqrstu"),
        ("AIza" + "A" * 35, "AIza" + "A" * 35),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz", "eyJzdWIiOiJ4In0"),
        ("DB_PASSWORD=correcthorse", "correcthorse"),
        ("redis://default:s3cretpw@10.0.0.1:6379", "s3cretpw"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----", "AAAA"),
    ],
)
def test_builtin_shapes(text: str, hidden: str) -> None:
    out, count = Redactor().redact(text)
    assert hidden not in out and count >= 1 and REDACTED in out


def test_literals_are_hidden_wherever_they_appear() -> None:
    r = Redactor(literals=[CANARY])
    assert r.clean(f"x{CANARY}y and {CANARY}") == f"x{REDACTED}y and {REDACTED}"
    with pytest.raises(ConfigError, match="at least 4"):
        Redactor(literals=["abc"])


def test_configured_patterns_whole_or_secret_group() -> None:
    r = Redactor([r"corp-[0-9a-f]{8}", r"session=(?P<secret>\w+)"])
    assert r.clean("id corp-deadbeef here") == f"id {REDACTED} here"
    assert r.clean("cookie session=abc123; path=/") == f"cookie session={REDACTED}; path=/"
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Redactor(["(unclosed"])


def test_redaction_is_idempotent() -> None:
    r = Redactor(literals=[CANARY])
    once = r.clean(f"token={CANARY} Bearer abcdefgh12345678 https://u:pw12345@h/")
    assert r.redact(once) == (once, 0)


def test_structured_values_hide_secret_keys_whatever_their_shape() -> None:
    value = {
        "headers": {"Authorization": "x", "X-Api-Key": 12345, "Accept": "text/plain"},
        "password": ["a", "b"],
        "prompt": f"use {CANARY}",
        "n": 3,
    }
    out = Redactor(literals=[CANARY]).redact_value(value)
    assert out["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "text/plain"}
    assert out["password"] == REDACTED and out["prompt"] == f"use {REDACTED}" and out["n"] == 3


def test_urls_lose_passwords_and_secret_query_values() -> None:
    r = Redactor()
    assert r.redact_url("https://bob:pw@h.test/p?q=1&token=abc&sig=zz") == (
        f"https://bob:{REDACTED}@h.test/p?q=1&token={REDACTED}&sig={REDACTED}"
    )
    assert r.redact_url("https://h.test/x?page=2") == "https://h.test/x?page=2"


def test_headers() -> None:
    out = Redactor().redact_headers({"Cookie": "a=b", "Content-Type": "text/html", "Proxy-Authorization": "x"})
    assert out == {"Cookie": REDACTED, "Content-Type": "text/html", "Proxy-Authorization": REDACTED}


def test_ordinary_text_is_left_alone() -> None:
    text = "the tokenizer = bpe; max_tokens = 16; see https://example.com/docs?page=2"
    assert Redactor().redact(text) == (text, 0)


@pytest.mark.parametrize(
    "text",
    ['{"max_tokens": 2000, "seed": 1}', "prompt_tokens=12345", "MAX_TOKENS: '4096'", '"cached_tokens":1024}'],
)
def test_token_counts_are_not_secrets(text: str) -> None:
    # Every stored task record has its request's max_tokens: a count, not a credential.
    assert Redactor().redact(text) == (text, 0)


@pytest.mark.parametrize(
    ("text", "kept"),
    [("token: 123456", "token: "), ("tokens=1234abcd", "tokens="), ("refresh_tokens: 'abcdefgh'", "refresh_tokens: '")],
)
def test_token_words_with_other_values_are_still_hidden(text: str, kept: str) -> None:
    assert Redactor().redact(text)[0].startswith(kept + REDACTED)


def test_structured_token_counts_are_kept() -> None:
    value = {"max_tokens": 2000, "usage": {"prompt_tokens": 12}, "refresh_tokens": ["abc"], "api_tokens": True}
    assert Redactor().redact_value(value) == {
        "max_tokens": 2000, "usage": {"prompt_tokens": 12}, "refresh_tokens": REDACTED, "api_tokens": REDACTED,
    }  # fmt: skip


def test_the_process_wide_redactor_can_be_extended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLORCH_TEST_UPSTREAM_KEY", CANARY)
    configured = RedactionConfig(patterns=["corp-[0-9]+"], literals_env=["LLORCH_TEST_UPSTREAM_KEY", "UNSET_VAR_X"])
    old = set_default_redactor(configured.redactor())
    try:
        assert redact_secrets(f"{CANARY} corp-42")[0] == f"{REDACTED} {REDACTED}"
        assert default_redactor() is not old
    finally:
        set_default_redactor(old)
    assert redact_secrets(CANARY) == (CANARY, 0)


# The built-in patterns as they were before the guards and the look-ahead (policy/_redact.py):
# the guarded ones must redact exactly like these, only faster.
_PLAIN_SECRET_WORD = r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?"
_PLAIN_WHOLE = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    re.compile(r"\b(?:sk|rk|pk)-(?:[A-Za-z0-9]+-)?[A-Za-z0-9_-]{16,}"),
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
]
_PLAIN_TOKEN_COUNT = r"tokens[\"']?\s*[:=]\s*[\"']?\d+(?![\w.-])"  # a count (max_tokens: 2000), not a secret
_PLAIN_VALUE = [
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        rf"(?i)(\b[\w.-]*(?!{_PLAIN_TOKEN_COUNT}){_PLAIN_SECRET_WORD}[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;&]{{4,}}"
    ),
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)(?!\[REDACTED\])[^\s@/]+(?=@)"),
]


def _plain_redact(text: str) -> tuple[str, int]:
    count = 0
    for pattern in _PLAIN_WHOLE:
        text, n = pattern.subn(REDACTED, text)
        count += n
    for pattern in _PLAIN_VALUE:
        text, n = pattern.subn(lambda m: m.group(1) + REDACTED, text)
        count += n
    return text, count


_PIECES = [
    "password", "PassWd", "secret", "TOKEN", "tokens", "api_key", "api-key", "apikey", "access_key", "private-key",
    "credentials", "my.", "x_", "Bearer ", "basic ", "sk-", "rk-proj-", "ghp_", "github_pat_", "glpat-", "xoxb-",
    "hf_", "AKIA", "ASIA", "AIza", "eyJ", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
    "https://", "user:", "@host", "=", ": ", ":", "'", '"', " ", "\n", ";", "&", ",", ".", "-", "_", "abcdefghij",
    "ABCDEFGHIJKLMNOP0123", "0123456789", "\u017f", "\u212a", "\u0130", REDACTED, "event: token\ndata: {\"t\":1}",
    "2000", "}", "max_",
]  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_guarded_builtin_patterns_redact_exactly_like_the_plain_ones(text: str) -> None:
    assert Redactor().redact(text) == _plain_redact(text)


def test_a_long_token_log_is_redacted_like_the_plain_patterns_do() -> None:
    frames = "".join(
        f'id: {i}\nevent: token\ndata: {{"t":"{1733203200000000000 + i}","i":{i}}}\n\n' for i in range(2000)
    )
    text = frames + 'id: 2001\nevent: end\ndata: {"tokens":2000,"api_key":"sk-abcdefghijklmnop1234"}\n\n'
    assert Redactor().redact(text) == _plain_redact(text)
    assert "sk-abcdefghijklmnop1234" not in Redactor().clean(text)


# -- secrets split across pieces (a task's tokens) ---------------------------------------------

_SPLIT_TEXTS = [
    "my key is sk-abcdefghijklmnop12345678 ok",
    "export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123 && run",
    "curl -H 'Authorization: Bearer abcdefgh12345678' https://x",
    "db: postgres://admin:s3cr3tpass@db.internal/app and password=hunter2hunter2",
    "the canary canary-5e1f0c2b9d7a4e63 twice: canary-5e1f0c2b9d7a4e63.",
    "non-ASCII literal: canäry-ü-9f8e7d6c here",
    "nothing secret in here at all, max_tokens: 2000",
]
_SPLIT_REDACTOR = Redactor(literals=["canary-5e1f0c2b9d7a4e63", "canäry-ü-9f8e7d6c"])


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_SPLIT_TEXTS), st.lists(st.integers(min_value=0, max_value=200), max_size=40))
def test_pieces_are_redacted_as_their_joined_text_is(text: str, cuts: list[int]) -> None:
    """However a text is cut into pieces (tokens), the pieces' redaction joins to the text's own
    redaction, keeps the number of pieces, and leaves a piece no secret touches as it was."""
    pieces = _cut(text, cuts)
    out = _SPLIT_REDACTOR.redact_pieces(pieces)
    expected = _SPLIT_REDACTOR.clean(text)
    if out is None:
        assert expected == text
        return
    assert "".join(out) == expected != text
    assert len(out) == len(pieces)
    spans = _SPLIT_REDACTOR.hidden_spans(text)
    offset = 0
    for piece, got in zip(pieces, out, strict=True):
        start, end = offset, offset + len(piece)
        offset = end
        if not any(s < end and e > start for s, e in spans):
            assert got == piece


def test_a_secret_in_no_piece_whole_is_still_hidden() -> None:
    pieces = ["key: s", "k-abcd", "efghijklmnop", "1234 then canary-5e", "1f0c2b9d7a4e63!"]
    assert all(_SPLIT_REDACTOR.clean(p) == p for p in pieces)  # each piece alone: nothing to hide
    assert _SPLIT_REDACTOR.redact_pieces(pieces) == ["key: [REDACTED]", "", "", " then [REDACTED]", "!"]


def test_hidden_spans_name_what_redact_hides() -> None:
    text = "a sk-abcdefghijklmnop12345678 b password=hunter2hunter2 c"
    spans = _SPLIT_REDACTOR.hidden_spans(text)
    assert [text[s:e] for s, e in spans] == ["sk-abcdefghijklmnop12345678", "hunter2hunter2"]
    assert _SPLIT_REDACTOR.hidden_spans("plain words, tokens: 12") == []
    assert _SPLIT_REDACTOR.redact_pieces(["plain ", "words"]) is None
    # configured patterns: a group named secret hides only that group
    r = Redactor(patterns=[r"acct=(?P<secret>\d{6})"])
    assert [("acct=123456 x"[s:e]) for s, e in r.hidden_spans("acct=123456 x")] == ["123456"]
    assert r.redact_pieces(["acct=12", "3456 x"]) == ["acct=[REDACTED]", " x"]
