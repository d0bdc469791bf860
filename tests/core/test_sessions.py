"""SessionRegistry with an explicit clock: TTL expiry, turns and KV warmth, delete, sweep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.core import Session, SessionRegistry

TTL = 10.0


@pytest.fixture
def registry() -> SessionRegistry:
    return SessionRegistry(ttl_s=TTL, max_turns=5)


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_ttl_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        SessionRegistry(ttl_s=ttl)


def test_touch_creates_a_cold_session(registry: SessionRegistry) -> None:
    assert registry.get("s", now=0.0) is None
    session = registry.touch("s", now=100.0)
    assert session == Session("s", expires_at=100.0 + TTL)
    assert (session.turns, session.tokens_used, session.kv_warm, session.pool, session.replica) == (
        0,
        0,
        False,
        None,
        None,
    )
    assert registry.get("s", now=100.0) is session
    assert len(registry) == 1
    assert registry.max_turns == 5


def test_session_expires_exactly_at_ttl(registry: SessionRegistry) -> None:
    registry.touch("s", now=100.0)
    assert registry.get("s", now=109.999) is not None
    assert registry.get("s", now=110.0) is None
    assert len(registry) == 0, "an expired session vanishes on look-up"
    # ... and stays gone even if asked about at an earlier time afterwards.
    assert registry.get("s", now=105.0) is None


def test_touch_extends_the_ttl(registry: SessionRegistry) -> None:
    first = registry.touch("s", now=0.0)
    again = registry.touch("s", now=8.0)
    assert again is first
    assert again.expires_at == 18.0
    assert registry.get("s", now=15.0) is first
    assert registry.get("s", now=18.0) is None


def test_ttl_ms_remaining(registry: SessionRegistry) -> None:
    session = registry.touch("s", now=50.0)
    assert session.ttl_ms_remaining(50.0) == 10_000
    assert session.ttl_ms_remaining(52.5) == 7_500
    assert session.ttl_ms_remaining(60.0) == 0
    assert session.ttl_ms_remaining(1_000.0) == 0


def test_record_turn_counts_and_warms(registry: SessionRegistry) -> None:
    registry.record_turn("s", now=1.0, pool="p1", replica="r0", tokens=30)
    session = registry.get("s", now=2.0)
    assert session is not None
    assert (session.turns, session.tokens_used, session.kv_warm) == (1, 30, True)
    assert (session.pool, session.replica) == ("p1", "r0")
    assert session.expires_at == 1.0 + TTL
    registry.record_turn("s", now=5.0, pool="p1", replica="r1", tokens=12)
    assert (session.turns, session.tokens_used, session.replica) == (2, 42, "r1")
    assert session.expires_at == 5.0 + TTL


def test_turn_after_expiry_starts_a_fresh_session(registry: SessionRegistry) -> None:
    registry.record_turn("s", now=0.0, pool="p1", replica="r0", tokens=30)
    registry.record_turn("s", now=TTL, pool="p2", replica="r9", tokens=5)
    session = registry.get("s", now=TTL)
    assert session is not None
    assert (session.turns, session.tokens_used, session.pool, session.replica) == (1, 5, "p2", "r9")


def test_delete(registry: SessionRegistry) -> None:
    registry.touch("a", now=0.0)
    registry.touch("b", now=0.0)
    assert registry.delete("a", now=1.0) is True
    assert registry.get("a", now=1.0) is None
    assert registry.delete("a", now=1.0) is False
    assert registry.delete("never", now=1.0) is False
    assert registry.get("b", now=1.0) is not None
    assert len(registry) == 1


def test_delete_of_an_expired_session_reports_not_found(registry: SessionRegistry) -> None:
    registry.touch("s", now=0.0)
    # Not looked up or swept since it expired: delete must still see that it is gone.
    assert registry.delete("s", now=TTL + 1) is False


def test_sweep_drops_only_expired(registry: SessionRegistry) -> None:
    registry.touch("old", now=0.0)
    registry.touch("edge", now=5.0)
    registry.touch("new", now=9.0)
    assert registry.sweep(now=15.0) == 2
    assert len(registry) == 1
    assert registry.get("new", now=15.0) is not None
    assert registry.sweep(now=15.0) == 0


@settings(max_examples=100, deadline=None)
@given(
    ttl=st.floats(0.001, 1e4),
    touches=st.lists(st.floats(0, 1e5), min_size=1, max_size=10).map(sorted),
    after=st.floats(0, 2e4),
)
def test_visible_exactly_until_ttl_after_last_touch(ttl: float, touches: list[float], after: float) -> None:
    """Whether each touch extends the session or starts a new one, it lives until ttl after the last."""
    registry = SessionRegistry(ttl_s=ttl)
    for t in touches:
        registry.touch("s", now=t)
    probe = touches[-1] + after
    session = registry.get("s", now=probe)
    assert (session is not None) == (probe < touches[-1] + ttl)
    assert len(registry) == (1 if session is not None else 0)
