"""Web search as pluggable adapters (OC-CLI-2502), with a cache in front.

An adapter is anything with a ``name`` and ``async search(query, limit=…) -> list[SearchHit]``.
:class:`SearxngSearch` speaks a SearXNG instance's JSON API through the safe fetcher (so the
search endpoint is policy-checked like any other outbound request, purpose ``search``).
:class:`CachedSearch` wraps any adapter with a bounded TTL cache keyed by (adapter, query, limit).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode

from llama_orch.policy._fetch import FetchFailed, SafeFetcher


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    snippet: str = ""


@runtime_checkable
class SearchAdapter(Protocol):
    name: str

    async def search(self, query: str, *, limit: int = 10) -> list[SearchHit]: ...


class CachedSearch:
    """Any adapter behind a bounded cache; ``hits``/``misses`` count what it saved."""

    def __init__(
        self,
        adapter: SearchAdapter,
        *,
        ttl_s: float = 600.0,
        max_entries: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, int], tuple[float, list[SearchHit]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def search(self, query: str, *, limit: int = 10) -> list[SearchHit]:
        key = (" ".join(query.split()).lower(), limit)
        now = self._clock()
        found = self._entries.get(key)
        if found is not None and now < found[0]:
            self._entries.move_to_end(key)
            self.hits += 1
            return list(found[1])
        self.misses += 1
        results = await self.adapter.search(query, limit=limit)
        self._entries[key] = (now + self._ttl, list(results))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return results


class SearxngSearch:
    """A SearXNG instance (``GET {base_url}/search?q=…&format=json``) reached through ``fetcher``."""

    name = "searxng"

    def __init__(self, base_url: str, fetcher: SafeFetcher) -> None:
        self._base = base_url.rstrip("/")
        self._fetcher = fetcher

    async def search(self, query: str, *, limit: int = 10) -> list[SearchHit]:
        url = f"{self._base}/search?{urlencode({'q': query, 'format': 'json'})}"
        result = await self._fetcher.fetch(url)
        if result.status != 200:
            raise FetchFailed("protocol", f"the search engine answered HTTP {result.status}")
        try:
            body = json.loads(result.body)
        except ValueError:
            raise FetchFailed("protocol", "the search engine answered something that is not JSON") from None
        hits: list[SearchHit] = []
        for item in body.get("results", []) if isinstance(body, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("url"), str):
                hits.append(SearchHit(str(item.get("title", "")), item["url"], str(item.get("content", ""))))
            if len(hits) >= limit:
                break
        return hits
