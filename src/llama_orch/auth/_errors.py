"""Auth failures as error envelopes: 401 (who are you?), 403 (not allowed), 429 (slow down).

``reason`` is a short fixed word (``missing``, ``expired``, ``unknown_kid``…) used as a metrics
label; messages never carry the credential.
"""

from __future__ import annotations

from llama_orch.auth._identity import Scope
from llama_orch.errors import OrchError
from llama_orch_api import ErrorCode

REASONS = frozenset(
    {"missing", "malformed", "invalid_token", "expired", "not_yet_valid", "wrong_audience", "wrong_issuer",
     "unknown_kid", "bad_signature", "alg_not_allowed", "keys_unavailable", "certificate"}
)  # fmt: skip


class Unauthenticated(OrchError):
    """``401 UNAUTHENTICATED``: no credentials, or credentials that do not verify."""

    def __init__(self, reason: str, message: str, *, method: str = "bearer", retriable: bool = False) -> None:
        assert reason in REASONS, reason
        super().__init__(ErrorCode.UNAUTHENTICATED, message, retriable=retriable, details={"reason": reason})
        self.reason = reason
        self.method = method

    @property
    def www_authenticate(self) -> str:
        error = "" if self.reason == "missing" else ', error="invalid_token"'
        return f'Bearer realm="llama-orch"{error}'


class Forbidden(OrchError):
    """``403 FORBIDDEN``: the identity is known but lacks the scope."""

    def __init__(self, subject: str, scope: Scope) -> None:
        super().__init__(
            ErrorCode.FORBIDDEN,
            f"{subject} lacks the {scope.value!r} scope this route needs",
            policy_label=f"scope:{scope.value}",
            details={"scope": scope.value},
        )
        self.scope = scope


class RateLimited(OrchError):
    """``429 RATE_LIMITED``: the identity's requests or tokens per minute are spent."""

    def __init__(self, kind: str, limit: int, retry_after_ms: int, *, retriable: bool = True) -> None:
        what = "requests" if kind == "requests" else "tokens"
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"rate limit of {limit} {what} per minute reached" if retriable
            else f"asks for more {what} than the limit of {limit} per minute allows",
            retriable=retriable,
            retry_after_ms=retry_after_ms if retriable else None,
            policy_label=f"rate-limit:{what}",
            details={"limit_per_minute": limit},
        )  # fmt: skip
        self.kind = what
        self.limit = limit
