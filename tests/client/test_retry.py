"""RetryPolicy: what is retried and how long it waits (no network, no sleeping)."""

from __future__ import annotations

import random

import pytest

from llama_orch.client import (
    AdmissionRejectError,
    InvalidParamsError,
    PoolDrainingError,
    RequestTimeoutError,
    RetryPolicy,
    ServerUnreachableError,
    TransportError,
)
from llama_orch.client._base import retry_after_ms
from llama_orch_api import ErrorCode, ErrorEnvelope


def envelope(code: ErrorCode, retriable: bool, retry_after: int | None = None) -> ErrorEnvelope:
    return ErrorEnvelope(code=code, message="m", retriable=retriable, retry_after_ms=retry_after)


def test_non_retriable_api_errors_are_never_retried() -> None:
    error = InvalidParamsError(envelope(ErrorCode.INVALID_PARAMS, False), status=400)
    assert RetryPolicy(max_attempts=10).delay_s(0, error) is None


def test_retriable_errors_wait_at_least_the_advice_plus_bounded_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, jitter=0.5, rng=random.Random(1))
    error = AdmissionRejectError(envelope(ErrorCode.ADMISSION_REJECT, True, 400), status=429)
    delays = [policy.delay_s(0, error) for _ in range(200)]
    assert all(d is not None and 0.4 <= d < 0.6 for d in delays)
    assert len({round(d or 0, 6) for d in delays}) > 100  # jittered, not one value for every client


def test_header_advice_is_used_when_the_envelope_has_none() -> None:
    error = PoolDrainingError(envelope(ErrorCode.POOL_DRAINING, True), status=503, retry_after_ms=2000)
    assert RetryPolicy(jitter=0).delay_s(0, error) == 2.0


def test_the_cap_bounds_the_advice_and_the_backoff() -> None:
    policy = RetryPolicy(max_attempts=50, base_delay_s=1, max_delay_s=3, jitter=0.3)
    slow = AdmissionRejectError(envelope(ErrorCode.ADMISSION_REJECT, True, 3_600_000), status=429)
    assert policy.delay_s(0, slow) == 3
    assert policy.delay_s(20, ServerUnreachableError("down")) == 3


def test_exponential_backoff_without_advice() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, jitter=0)
    assert [policy.delay_s(n, ServerUnreachableError("down")) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]


def test_attempts_run_out() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=0)
    assert policy.delay_s(1, ServerUnreachableError("down")) is not None
    assert policy.delay_s(2, ServerUnreachableError("down")) is None


@pytest.mark.parametrize(
    ("error", "idempotent", "retried"),
    [
        (ServerUnreachableError("down"), False, True),  # never reached the server
        (RequestTimeoutError("slow"), True, True),
        (RequestTimeoutError("slow"), False, False),  # it may have been done: do not do it twice
        (TransportError("reset"), False, False),
    ],
)
def test_transport_errors(error: TransportError, idempotent: bool, retried: bool) -> None:
    assert (RetryPolicy().delay_s(0, error, idempotent=idempotent) is not None) is retried


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Backoff-Ms": "250", "Retry-After": "1"}, 250),
        ({"Retry-After": "3"}, 3000),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: int | None) -> None:
    assert retry_after_ms(headers) == expected


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
