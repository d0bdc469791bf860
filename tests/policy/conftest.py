"""Fetch-test plumbing: a loopback upstream server, and a network backend that reaches nothing else.

The upstream is a real aiohttp server on 127.0.0.1. Tests name it by a public address
(``PUBLIC``, 93.184.216.34) through a stubbed resolver; :class:`GuardBackend` carries connects to
that address onto the loopback server and turns any other connect into a test failure, so a broken
check can never send a packet off this machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import pytest
from aiohttp import web

PUBLIC = "93.184.216.34"
STATE = web.AppKey("state", dict)
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


@dataclass
class GuardBackend(httpcore.AsyncNetworkBackend):
    """Connects only the addresses in ``routes`` (to loopback); records every attempt."""

    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    attempts: list[tuple[str, int]] = field(default_factory=list)
    inner: httpcore.AsyncNetworkBackend = field(default_factory=httpcore.AnyIOBackend)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        if (host, port) not in self.routes:
            raise AssertionError(f"the fetcher tried to connect to {host}:{port}, which a check should have refused")
        real_host, real_port = self.routes[(host, port)]
        return await self.inner.connect_tcp(real_host, real_port, timeout=timeout)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("unix socket connect attempted")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _upstream_app() -> web.Application:
    app = web.Application()
    state = {"etag_hits": 0}

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello docs sk-abcdefghijklmnopqrstuvwxyz", headers={"Cache-Control": "max-age=60"})

    async def etag(request: web.Request) -> web.Response:
        state["etag_hits"] += 1
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(text="versioned", headers={"ETag": '"v1"', "Cache-Control": "no-cache"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query.get("n", "5000")))

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(20):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 100
        await response.prepare(request)
        for _ in range(50):  # bounded: 50 bytes over 10 s at most
            await response.write(b"z")
            await asyncio.sleep(0.2)
        return response

    async def slow_headers(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def cookie(request: web.Request) -> web.Response:
        seen = request.headers.get("Authorization", "") + request.headers.get("Cookie", "")
        return web.Response(text=f"seen:{seen}", headers={"Set-Cookie": "session=s3cr3tvalue", "X-Internal": "1"})

    app.router.add_get("/ok", ok)
    app.router.add_get("/etag", etag)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/slow", slow)
    app.router.add_get("/slow-headers", slow_headers)
    app.router.add_get("/cookie", cookie)
    app[STATE] = state
    return app


@dataclass
class Upstream:
    port: int
    app: web.Application

    @property
    def etag_hits(self) -> int:
        return int(self.app[STATE]["etag_hits"])


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    app = _upstream_app()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Upstream(port, app)
    finally:
        await runner.cleanup()


@pytest.fixture
def guard(upstream: Upstream) -> GuardBackend:
    """Only the public stand-in address (port 80) is reachable, and it lands on the upstream."""
    return GuardBackend(
        routes={(PUBLIC, 80): ("127.0.0.1", upstream.port), (PUBLIC_V6, 80): ("127.0.0.1", upstream.port)}
    )
