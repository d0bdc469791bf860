"""Who is calling, and what they may do: identities and scopes.

Scopes (OC-CLI-3001): ``data`` (tasks, sessions, the OpenAI front door), ``control`` (catalog,
pools), ``artifacts``, ``replicas`` (pool-managerd registration and heartbeats), ``admin``
(everything, and the only scope that needs no other).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Scope(StrEnum):
    data = "data"
    control = "control"
    artifacts = "artifacts"
    replicas = "replicas"
    admin = "admin"


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scope names to scopes; unknown names are ignored (an IdP may carry scopes of other apps)."""
    known = {s.value for s in Scope}
    return frozenset(Scope(v) for v in values if v in known)


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``subject`` and ``method`` are what logs and records show; the
    credential itself is never kept here."""

    subject: str
    method: str
    """``token``, ``jwt``, ``mtls`` or ``local`` (the loopback dev mode)."""
    scopes: frozenset[Scope] = field(default_factory=frozenset)

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.admin in self.scopes

    @property
    def label(self) -> str:
        """``method:subject``, as logs, task records and audit records show the caller."""
        return f"{self.method}:{self.subject}"


LOCAL_DEV = Identity("local", "local", frozenset(Scope))
"""The identity of every caller in the local dev mode (loopback bind, no auth configured)."""
