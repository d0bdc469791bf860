"""When to retry, and how long to wait first (OC-CLI-2802).

Only what can succeed later is retried: an :class:`~llama_orch.client.APIError` whose envelope says
``retriable`` (429 backpressure, a draining pool, a missed deadline…), a connection that could not
be opened (the request never reached the server), and a dropped or timed-out idempotent request.
A 4xx that is not retriable is raised at once: sending it again cannot help.

The wait honours the server's advice (``retry_after_ms`` from the envelope, ``X-Backoff-Ms`` or
``Retry-After``) and otherwise grows exponentially; jitter is only ever *added*, so a client never
comes back before it was told to, and spreads out so that many clients told the same thing do not
come back together. ``max_delay_s`` caps every wait, the server's advice included.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from llama_orch.client._errors import APIError, LlamaOrchError, ServerUnreachableError, TransportError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try, and how long to wait between tries.

    >>> policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, jitter=0.0)
    >>> policy.backoff_s(0), policy.backoff_s(1)
    (0.1, 0.2)
    """

    max_attempts: int = 5
    """Tries in all, the first included; 1 disables retries."""
    base_delay_s: float = 0.1
    """First wait when the server gave no advice; doubled on every further try."""
    max_delay_s: float = 30.0
    """No wait is longer, the server's advice included."""
    jitter: float = 0.25
    """Each wait is lengthened by a random fraction in ``[0, jitter)`` of itself."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.jitter < 0:
            raise ValueError("delays and jitter must not be negative")

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed try number ``attempt`` (0-based) when the server gave no advice."""
        return min(self.max_delay_s, self.base_delay_s * (2.0**attempt))

    def retriable(self, error: LlamaOrchError, *, idempotent: bool) -> bool:
        """Whether ``error`` may go away if the same request is sent again."""
        if isinstance(error, APIError):
            return error.retriable
        if isinstance(error, ServerUnreachableError):
            return True  # the request never reached the server
        return isinstance(error, TransportError) and idempotent

    def delay_s(self, attempt: int, error: LlamaOrchError, *, idempotent: bool = True) -> float | None:
        """Seconds to wait before try ``attempt + 1``, or None to give up and raise ``error``."""
        if attempt + 1 >= self.max_attempts or not self.retriable(error, idempotent=idempotent):
            return None
        advised = error.retry_after_ms if isinstance(error, APIError) else None
        base = advised / 1000.0 if advised is not None else self.backoff_s(attempt)
        return min(self.max_delay_s, base * (1.0 + self.jitter * self.rng.random()))


NO_RETRY = RetryPolicy(max_attempts=1)
