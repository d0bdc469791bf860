"""Per-identity rate limits: requests and tokens per minute, as two token buckets per identity.

Pure (the clock is injected, no I/O, no threads). A bucket holds up to its per-minute limit and
refills continuously at limit/60 per second, so a burst of a whole minute's allowance is allowed
after a quiet minute, and a steady rate at the limit never waits.

:meth:`RateLimiter.acquire` takes one request and ``tokens`` tokens (a task's ``max_tokens``, say)
from the identity's buckets, or takes nothing and raises :class:`RateLimited` with how long to wait
(``Retry-After``). :meth:`RateLimiter.refund` gives back tokens a task did not use. A request for
more tokens than a whole minute allows is refused as not retriable.

Memory is bounded by ``max_identities``: the least recently seen identity is forgotten first
(which starts it over with full buckets — lenient, never wrong in the strict direction).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llama_orch.auth._errors import RateLimited


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class RateState:
    """What the headers of an admitted request say: ``X-RateLimit-Limit/Remaining/Reset``."""

    limit: int | None
    remaining: int | None
    reset_s: int

    def headers(self) -> dict[str, str]:
        if self.limit is None or self.remaining is None:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


_UNLIMITED = RateState(None, None, 0)


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level = level
        self.stamp = stamp


class RateLimiter:
    def __init__(
        self,
        default: Limits = Limits(),
        per_subject: Mapping[str, Limits] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_identities: int = 10_000,
    ) -> None:
        self._default = default
        self._per_subject = dict(per_subject or {})
        self._clock = clock
        self._max = max_identities
        self._buckets: OrderedDict[str, tuple[_Bucket, _Bucket]] = OrderedDict()
        self._active = any(
            lim.requests_per_minute is not None or lim.tokens_per_minute is not None
            for lim in (default, *self._per_subject.values())
        )

    @property
    def active(self) -> bool:
        """Whether any identity has a limit (else :meth:`acquire` takes nothing and says nothing)."""
        return self._active

    def limits(self, subject: str) -> Limits:
        return self._per_subject.get(subject, self._default)

    @property
    def tracked(self) -> int:
        return len(self._buckets)

    def acquire(self, subject: str, tokens: int = 0) -> RateState:
        limits = self.limits(subject)
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        if rpm is None and tpm is None:
            return _UNLIMITED
        requests, token_bucket = self._refilled(subject, limits)
        if tpm is not None and tokens > tpm:
            raise RateLimited("tokens", tpm, 0, retriable=False)
        if rpm is not None and requests.level < 1:
            raise RateLimited("requests", rpm, _wait_ms(1 - requests.level, rpm))
        if tpm is not None and token_bucket.level < tokens:
            raise RateLimited("tokens", tpm, _wait_ms(tokens - token_bucket.level, tpm))
        if rpm is not None:
            requests.level -= 1
        if tpm is not None:
            token_bucket.level -= tokens
        if rpm is not None:
            return RateState(rpm, int(requests.level), math.ceil((rpm - requests.level) * 60 / rpm))
        assert tpm is not None
        return RateState(tpm, int(token_bucket.level), math.ceil((tpm - token_bucket.level) * 60 / tpm))

    def refund(self, subject: str, tokens: int) -> None:
        """Give back ``tokens`` taken by :meth:`acquire` but not used (never above the limit)."""
        limits = self.limits(subject)
        if limits.tokens_per_minute is None or tokens <= 0 or subject not in self._buckets:
            return
        _, bucket = self._refilled(subject, limits)
        bucket.level = min(float(limits.tokens_per_minute), bucket.level + tokens)

    def _refilled(self, subject: str, limits: Limits) -> tuple[_Bucket, _Bucket]:
        now = self._clock()
        pair = self._buckets.get(subject)
        if pair is None:
            pair = (
                _Bucket(float(limits.requests_per_minute or 0), now),
                _Bucket(float(limits.tokens_per_minute or 0), now),
            )
            self._buckets[subject] = pair
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(subject)
        for bucket, limit in zip(pair, (limits.requests_per_minute, limits.tokens_per_minute), strict=True):
            if limit is not None:
                bucket.level = min(float(limit), bucket.level + (now - bucket.stamp) * limit / 60.0)
            bucket.stamp = now
        return pair


def _wait_ms(missing: float, per_minute: int) -> int:
    return max(1, math.ceil(missing * 60_000 / per_minute))
