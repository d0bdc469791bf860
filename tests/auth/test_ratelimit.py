"""Per-identity rate limits (pure; the clock is a list the test moves)."""

from __future__ import annotations

import pytest

from llama_orch.auth import Limits, RateLimited, RateLimiter


def _limiter(**kw: object) -> tuple[RateLimiter, list[float]]:
    now = [0.0]
    return RateLimiter(clock=lambda: now[0], **kw), now  # type: ignore[arg-type]


def test_requests_per_minute_with_headers_and_retry_after() -> None:
    limiter, now = _limiter(default=Limits(requests_per_minute=3))
    states = [limiter.acquire("alice") for _ in range(3)]
    assert [s.remaining for s in states] == [2, 1, 0]
    assert states[-1].headers() == {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "60"}
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("alice")
    error = caught.value
    assert error.status == 429 and error.retriable and error.retry_after_ms == 20_000
    assert error.policy_label == "rate-limit:requests"
    # other identities are not affected
    limiter.acquire("bob")
    now[0] = 20.0
    assert limiter.acquire("alice").remaining == 0


def test_tokens_per_minute_and_refunds() -> None:
    limiter, _ = _limiter(default=Limits(tokens_per_minute=1000))
    limiter.acquire("alice", tokens=800)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("alice", tokens=300)
    assert caught.value.policy_label == "rate-limit:tokens" and caught.value.retry_after_ms == 6000
    limiter.refund("alice", 500)  # the task used 300 of its 800
    assert limiter.acquire("alice", tokens=600).remaining == 100
    limiter.refund("alice", 10**6)
    assert limiter.acquire("alice", tokens=0).remaining == 1000  # never above the limit
    with pytest.raises(RateLimited) as too_big:
        limiter.acquire("alice", tokens=1001)
    assert not too_big.value.retriable and too_big.value.retry_after_ms is None


def test_a_refused_request_takes_nothing() -> None:
    limiter, _ = _limiter(default=Limits(requests_per_minute=10, tokens_per_minute=100))
    limiter.acquire("a", tokens=100)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limiter.acquire("a", tokens=1)
    assert limiter.acquire("a", tokens=0).remaining == 8  # only the two admitted requests counted


def test_per_subject_limits_and_unlimited() -> None:
    limiter, _ = _limiter(default=Limits(requests_per_minute=1), per_subject={"ci": Limits()})
    for _ in range(100):
        assert limiter.acquire("ci").headers() == {}
    limiter.acquire("x")
    with pytest.raises(RateLimited):
        limiter.acquire("x")


def test_memory_is_bounded() -> None:
    limiter, _ = _limiter(default=Limits(requests_per_minute=5), max_identities=100)
    for i in range(1000):
        limiter.acquire(f"user{i}")
    assert limiter.tracked == 100
