"""The one redactor: built-in shapes, literals, configured patterns, structured values, URLs, headers."""

from __future__ import annotations

import pytest

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
