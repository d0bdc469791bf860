"""A bounded in-memory HTTP cache for the fetch tool: freshness from ``Cache-Control: max-age``,
revalidation with ``ETag``/``Last-Modified``, LRU eviction by entry count and total bytes.

Pure: the clock is injected and nothing here does I/O. Responses with ``no-store`` are not kept;
``no-cache`` ones are kept but always revalidated.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_MAX_AGE = re.compile(r"(?i)(?:^|[,\s])max-age\s*=\s*\"?(\d+)")


@dataclass(frozen=True)
class CachedResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    stored_at: float
    fresh_until: float

    @property
    def validators(self) -> dict[str, str]:
        """Conditional request headers that revalidate this response."""
        out: dict[str, str] = {}
        if "etag" in self.headers:
            out["If-None-Match"] = self.headers["etag"]
        if "last-modified" in self.headers:
            out["If-Modified-Since"] = self.headers["last-modified"]
        return out


class FetchCache:
    """``(method, url)`` → the last final response, bounded by ``max_entries`` and ``max_bytes``."""

    def __init__(
        self,
        *,
        max_entries: int = 256,
        max_bytes: int = 32 * 1024 * 1024,
        default_ttl_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[tuple[str, str], CachedResponse] = OrderedDict()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.default_ttl_s = default_ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, method: str, url: str) -> CachedResponse | None:
        entry = self._entries.get((method, url))
        if entry is not None:
            self._entries.move_to_end((method, url))
        return entry

    def is_fresh(self, entry: CachedResponse) -> bool:
        return self._clock() < entry.fresh_until

    def store(
        self, method: str, url: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> CachedResponse | None:
        """Keep a final response (200 only); returns the entry, or None when it may not be kept."""
        cache_control = headers.get("cache-control", "").lower()
        if status != 200 or "no-store" in cache_control or len(body) > self.max_bytes:
            self.drop(method, url)
            return None
        now = self._clock()
        ttl = 0.0 if "no-cache" in cache_control else self._ttl(cache_control)
        entry = CachedResponse(status, dict(headers), body, now, now + ttl)
        self.drop(method, url)
        self._entries[(method, url)] = entry
        self._bytes += len(body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.body)
        return entry

    def refreshed(self, method: str, url: str, entry: CachedResponse, headers: Mapping[str, str]) -> CachedResponse:
        """The entry after a ``304 Not Modified``: fresh again, with the new validators merged in."""
        merged = {
            **entry.headers,
            **{k: v for k, v in headers.items() if k in ("etag", "last-modified", "cache-control")},
        }
        now = self._clock()
        cache_control = merged.get("cache-control", "").lower()
        ttl = 0.0 if "no-cache" in cache_control else self._ttl(cache_control)
        new = CachedResponse(entry.status, merged, entry.body, now, now + ttl)
        if (method, url) in self._entries:
            self._entries[(method, url)] = new
            self._entries.move_to_end((method, url))
        return new

    def drop(self, method: str, url: str) -> None:
        old = self._entries.pop((method, url), None)
        if old is not None:
            self._bytes -= len(old.body)

    def _ttl(self, cache_control: str) -> float:
        match = _MAX_AGE.search(cache_control)
        return float(match.group(1)) if match else self.default_ttl_s
