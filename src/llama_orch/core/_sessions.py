"""Sessions: a TTL'd group of tasks that may reuse a replica's KV cache (OC-CLI-2004).

Time is passed in (seconds, monotonic) so the registry needs no clock and no event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from llama_orch.core._budgets import Budget


@dataclass(slots=True)
class Session:
    session_id: str
    expires_at: float
    turns: int = 0
    tokens_used: int = 0
    pool: str | None = None
    replica: str | None = None
    kv_warm: bool = False
    slot: int | None = None
    """The engine slot of the last turn on ``replica`` (where its KV cache is), when slots are pinned."""
    budget: Budget | None = None
    in_flight: int = 0

    def ttl_ms_remaining(self, now: float) -> int:
        return max(0, int((self.expires_at - now) * 1000))


class SessionRegistry:
    """Sessions by id; each use extends the TTL; expired sessions vanish on the next look-up."""

    def __init__(self, ttl_s: float, max_turns: int | None = None) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.ttl_s = ttl_s
        self.max_turns = max_turns
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str, now: float) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires_at <= now:
            del self._sessions[session_id]
            return None
        return session

    def touch(self, session_id: str, now: float) -> Session:
        """Get or create the session and extend its TTL."""
        session = self.get(session_id, now)
        if session is None:
            session = self._sessions[session_id] = Session(session_id, now + self.ttl_s)
        else:
            session.expires_at = now + self.ttl_s
        return session

    def record_turn(
        self, session_id: str, now: float, *, pool: str, replica: str, tokens: int, slot: int | None = None
    ) -> None:
        """A task of the session finished on ``replica`` (in engine ``slot``): its KV cache there is warm."""
        session = self.touch(session_id, now)
        session.turns += 1
        session.tokens_used += tokens
        session.kv_warm = True
        session.pool, session.replica, session.slot = pool, replica, slot

    def delete(self, session_id: str, now: float) -> bool:
        if self.get(session_id, now) is None:  # expired counts as gone
            return False
        del self._sessions[session_id]
        return True

    def sweep(self, now: float) -> int:
        """Drop expired sessions; returns how many."""
        return len(self.sweep_ids(now))

    def sweep_ids(self, now: float) -> list[str]:
        """Drop expired sessions; returns their ids."""
        expired = [sid for sid, s in self._sessions.items() if s.expires_at <= now]
        for sid in expired:
            del self._sessions[sid]
        return expired

    def restore(self, session: Session) -> None:
        """Put back a session kept across a restart (its TTL as it was, not extended)."""
        self._sessions[session.session_id] = session

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))
