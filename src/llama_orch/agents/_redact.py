"""Secrets out of prompts before they are stored: well-known token shapes and ``key = value`` assignments.

A pattern list, not a guarantee: it catches what commonly leaks into prompts (API keys pasted into
code, bearer headers, private keys, ``password=...`` lines). Callers with a policy of their own pass
their own ``redact`` function to :class:`~llama_orch.agents.AgentArtifacts`.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_secrets"]

REDACTED = "[REDACTED]"

_WHOLE = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    re.compile(r"\b(?:sk|rk|pk)-(?:[A-Za-z0-9]+-)?[A-Za-z0-9_-]{16,}"),  # OpenAI/Anthropic/Stripe style
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
]
# Keep the name, hide the value: "Authorization: Bearer x", "api_key = 'x'", "PASSWORD=x", URLs with user:pass@.
_VALUE = [
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)(\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?"
        r"[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;]{4,}"
    ),
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?=@)"),
]


def redact_secrets(text: str) -> tuple[str, int]:
    """``text`` with secrets replaced by ``[REDACTED]``, and how many were replaced.

    >>> redact_secrets("curl -H 'Authorization: Bearer abcdefgh12345678' https://x")
    ("curl -H 'Authorization: Bearer [REDACTED]' https://x", 1)
    """
    count = 0
    for pattern in _WHOLE:
        text, n = pattern.subn(REDACTED, text)
        count += n
    for pattern in _VALUE:
        text, n = pattern.subn(lambda m: m.group(1) + REDACTED, text)
        count += n
    return text, count
