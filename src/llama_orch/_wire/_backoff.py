"""How long a server asked us to wait before trying again, read from its answer's headers.

One reader for both sides: the SDK reads orchestratord's 429/503 (``X-Backoff-Ms`` with
``Retry-After``), the engine adapters read engines' 429/503 (OpenAI's ``retry-after-ms``, or
``Retry-After``). The headers are tried in this order, and the first one that holds a valid value
wins:

=================  ==============================================  ===================================
header             value                                           sent by
=================  ==============================================  ===================================
``X-Backoff-Ms``   milliseconds                                    orchestratord
``retry-after-ms`` milliseconds                                    OpenAI's API (and its imitators)
``Retry-After``    seconds, or an HTTP date (RFC 9110 §10.2.3)     everyone
=================  ==============================================  ===================================

A number may have a fraction (``Retry-After: 1.5`` is read as 1500 ms, though RFC 9110 allows only
whole seconds); it is rounded to whole milliseconds. A negative, infinite or unreadable value is no
advice, and the next header is tried. A date in the past means "now" (0). Header names match in
any case, whatever mapping holds them.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC
from typing import overload

__all__ = ["retry_after_ms"]

_MS_HEADERS = ("X-Backoff-Ms", "retry-after-ms")


@overload
def retry_after_ms(headers: Mapping[str, str], default: int, *, now: float | None = None) -> int: ...
@overload
def retry_after_ms(headers: Mapping[str, str], default: None = None, *, now: float | None = None) -> int | None: ...
def retry_after_ms(headers: Mapping[str, str], default: int | None = None, *, now: float | None = None) -> int | None:
    """The advised wait in milliseconds, or ``default`` when the headers advise none.

    ``now`` (seconds since the epoch) is when an HTTP date is measured from; the clock by default.

    >>> retry_after_ms({"Retry-After": "2"}), retry_after_ms({"x-backoff-ms": "250", "Retry-After": "2"})
    (2000, 250)
    >>> retry_after_ms({}), retry_after_ms({}, 1000), retry_after_ms({"Retry-After": "soon"}, 1000)
    (None, 1000, 1000)
    """
    for name in _MS_HEADERS:
        if (ms := _non_negative(_header(headers, name))) is not None:
            return round(ms)
    after = _header(headers, "Retry-After")
    if (seconds := _non_negative(after)) is not None:
        return round(seconds * 1000)
    if after is not None and (when := _http_date(after)) is not None:
        return max(0, round((when - (time.time() if now is None else now)) * 1000))
    return default


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # A plain dict is case-sensitive; httpx's and aiohttp's header mappings are not.
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value.strip() if value is not None else None


def _non_negative(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _http_date(text: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": the RFC's dates are GMT
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
