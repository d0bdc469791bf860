"""Search adapters: the SearXNG adapter over the safe fetcher (loopback fake), and the cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from llama_orch.policy import (
    BuiltinPolicy,
    CachedSearch,
    FetchFailed,
    OutboundRules,
    PolicyDenied,
    SafeFetcher,
    SearchAdapter,
    SearchHit,
    SearxngSearch,
    StaticResolver,
)
from tests.policy.conftest import PUBLIC, GuardBackend


@pytest.fixture
async def searx() -> AsyncIterator[int]:
    async def search(request: web.Request) -> web.Response:
        q = request.query["q"]
        if q == "broken":
            return web.Response(text="<html>", content_type="text/html")
        results = [{"title": f"{q} {i}", "url": f"https://r.test/{i}", "content": "c"} for i in range(5)]
        return web.json_response({"query": q, "results": [{"no": "url"}, *results]})

    app = web.Application()
    app.router.add_get("/search", search)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def _searxng(port: int, domains: list[str]) -> tuple[SearxngSearch, GuardBackend]:
    guard = GuardBackend(routes={(PUBLIC, 80): ("127.0.0.1", port)})
    fetcher = SafeFetcher(
        BuiltinPolicy({"search": OutboundRules(allow_domains=domains)}),
        purpose="search",
        resolver=StaticResolver({"searx.test": [PUBLIC], "evil.test": ["127.0.0.1"]}),
        network=guard,
        cache=None,
    )
    return SearxngSearch("http://searx.test/", fetcher), guard


async def test_searxng_results(searx: int) -> None:
    adapter, _ = _searxng(searx, ["searx.test"])
    assert isinstance(adapter, SearchAdapter)
    hits = await adapter.search("python asyncio", limit=3)
    assert hits == [SearchHit(f"python asyncio {i}", f"https://r.test/{i}", "c") for i in range(3)]
    with pytest.raises(FetchFailed, match="not JSON"):
        await adapter.search("broken")


async def test_search_endpoint_is_policy_checked(searx: int) -> None:
    adapter, guard = _searxng(searx, [])
    with pytest.raises(PolicyDenied):
        await adapter.search("x")
    assert guard.attempts == []


async def test_cached_search_hits_and_expiry(searx: int) -> None:
    adapter, guard = _searxng(searx, ["searx.test"])
    now = [0.0]
    cached = CachedSearch(adapter, ttl_s=10, max_entries=2, clock=lambda: now[0])
    first = await cached.search("Python  AsyncIO", limit=2)
    again = await cached.search("python asyncio", limit=2)
    assert first == again and (cached.hits, cached.misses) == (1, 1) and len(guard.attempts) == 1
    now[0] = 11.0
    await cached.search("python asyncio", limit=2)
    assert cached.misses == 2
    await cached.search("a", limit=1)
    await cached.search("b", limit=1)
    await cached.search("python asyncio", limit=2)  # evicted by the bound
    assert cached.misses == 5
