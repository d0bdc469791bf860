"""Safe fetch (OC-CLI-2501): policy first, our own DNS, the checked address pinned, every hop re-checked.

For each hop (the URL, then each redirect's ``Location``):

1. the policy is asked about the URL alone — a refused name is never looked up;
2. the host is resolved here (:class:`Resolver`), and the policy is asked again with *every*
   address it resolved to (one private address among public ones refuses the hop);
3. the connection goes to the first checked address and nowhere else: the request runs on an
   ``httpcore`` connection pool whose network backend (:class:`PinnedBackend`) replaces the host
   by that address at connect time (TLS still verifies the certificate for the host name). There
   is no second lookup for a rebinding DNS server to answer differently, and IP literals go through
   the same seam, which aiohttp's resolver hook would skip.
4. redirects are followed by hand (at most ``max_redirects``), each one a new hop from step 1.

Limits: ``max_bytes`` (``Content-Length`` checked first, then counted as the body arrives), one
deadline for the whole fetch (resolution, connects, redirects, a body that trickles in), a read
timeout per chunk. ``Accept-Encoding: identity`` so a small compressed body cannot expand.
Nothing of the caller's is forwarded (no cookies, no credentials); ``Set-Cookie`` and other
headers outside a short list are not kept; URLs are shown and stored redacted.

Failures: ``403 POLICY_DENIED`` (a rule refused a hop; ``policy_label`` names it) or
``502 FETCH_FAILED`` with ``details.reason`` one of ``dns``, ``connect``, ``timeout``,
``too_large``, ``redirects``, ``protocol``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from llama_orch.errors import OrchError
from llama_orch.policy._cache import FetchCache
from llama_orch.policy._hook import Decision, Outbound, PolicyDenied, PolicyHook, log_decision
from llama_orch.policy._redact import Redactor, default_redactor
from llama_orch.policy._targets import Target, TargetError, parse_target
from llama_orch_api import ErrorCode

log = logging.getLogger("llama_orch.policy.fetch")

_REDIRECTS = {301, 302, 303, 307, 308}
_KEPT_HEADERS = frozenset(
    {"content-type", "content-length", "etag", "last-modified", "cache-control", "date", "content-language",
     "location", "age", "expires"}
)  # fmt: skip
_TEXTUAL = ("text/", "application/json", "application/xml", "application/xhtml", "application/yaml", "+json", "+xml")
USER_AGENT = "llama-orch-fetch/0.1"


class FetchFailed(OrchError):
    """``502 FETCH_FAILED``: the upstream could not be fetched within the limits."""

    def __init__(self, reason: str, message: str, *, retriable: bool = False) -> None:
        super().__init__(
            ErrorCode.FETCH_FAILED,
            default_redactor().clean(message),
            retriable=retriable,
            retry_after_ms=1000 if retriable else None,
            details={"reason": reason},
        )
        self.reason = reason


class ResolveError(Exception):
    """The name does not resolve (NXDOMAIN, no addresses, resolver failure)."""


class Resolver:
    """DNS for safe fetch: ``resolve(host, port)`` → the addresses, in the order to try them."""

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolveError(str(exc)) from None
        seen: list[str] = []
        for info in infos:
            address = str(info[4][0])
            if address not in seen:
                seen.append(address)
        return seen


class StaticResolver(Resolver):
    """A resolver from a table (tests, or a pinned hosts file): ``{"docs.test": ["93.184.216.34"]}``.

    A value may be a callable answering each lookup in turn (a rebinding DNS server in a test);
    ``lookups`` records every name asked. Names not in the table do not resolve.
    """

    def __init__(self, table: Mapping[str, Sequence[str] | Callable[[], Sequence[str]]]) -> None:
        self._table = dict(table)
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answer = self._table.get(host)
        if answer is None:
            raise ResolveError(f"{host} does not resolve")
        return list(answer() if callable(answer) else answer)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects ``host:port`` to one vetted address, and refuses
    every other connect. ``inner`` opens the real socket (httpcore's AnyIO backend by default; a
    test passes one that only reaches loopback)."""

    def __init__(self, host: str, port: int, address: str, inner: httpcore.AsyncNetworkBackend) -> None:
        self._host, self._port, self._address, self._inner = host, port, address, inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if (host.strip("[]"), port) != (self._host, self._port):
            raise httpcore.ConnectError(f"connect to {host}:{port} refused: only the vetted host may be reached")
        return await self._inner.connect_tcp(
            self._address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never reached by the fetch tool")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class Vetted:
    """A hop the policy allowed: the parsed target, the address to connect to, and the decisions."""

    target: Target
    address: str
    addresses: tuple[str, ...]
    decisions: tuple[Decision, ...]


async def vet_outbound(
    policy: PolicyHook,
    url: str,
    *,
    purpose: str,
    resolver: Resolver,
    method: str = "GET",
    identity: str | None = None,
    redactor: Redactor | None = None,
) -> Vetted:
    """Ask ``policy`` about ``url`` (alone, then with its resolved addresses); raise
    :class:`PolicyDenied` or :class:`FetchFailed` (``dns``), or return where to connect."""
    shown = (redactor or default_redactor()).redact_url(url)
    first = await policy.outbound(Outbound(url, purpose, method, identity))
    log_decision("outbound", first, shown, source=purpose)
    first.raise_for_denial()
    try:
        target = parse_target(url)
    except TargetError as exc:  # a policy that allowed a URL the fetcher cannot parse
        raise PolicyDenied(exc.rule, exc.reason) from None
    if target.ip is not None:
        addresses = [str(target.ip)]
    else:
        try:
            addresses = await resolver.resolve(target.host, target.port)
        except ResolveError:
            raise FetchFailed("dns", f"{target.host} does not resolve", retriable=True) from None
        if not addresses:
            raise FetchFailed("dns", f"{target.host} resolved to no address", retriable=True)
    second = await policy.outbound(Outbound(url, purpose, method, identity, tuple(addresses)))
    log_decision("outbound", second, f"{shown} -> {', '.join(addresses)}", source=purpose)
    second.raise_for_denial()
    return Vetted(target, addresses[0], tuple(addresses), (first, second))


@dataclass(frozen=True)
class Hop:
    url: str
    """Redacted."""
    status: int
    address: str
    rule: str


@dataclass(frozen=True)
class FetchResult:
    """What one fetch returned. URLs are redacted; ``headers`` are the kept ones only."""

    url: str
    final_url: str
    method: str
    status: int
    headers: dict[str, str]
    body: bytes
    cache: str
    """``miss`` (fetched), ``hit`` (fresh in the cache, no request) or ``revalidated`` (304)."""
    hops: tuple[Hop, ...]
    elapsed_ms: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def text(self) -> str | None:
        """The body as text when it is textual and valid UTF-8 (else None)."""
        ctype = self.content_type.lower()
        if self.body and not any(t in ctype for t in _TEXTUAL):
            return None
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def trace_content(self, redactor: Redactor | None = None, *, body_max: int = 256 * 1024) -> dict[str, Any]:
        """The ``trace`` artifact for this fetch: request, hops, response, and the body (redacted
        text up to ``body_max`` characters; otherwise only its size and sha256)."""
        r = redactor or default_redactor()
        text = self.text()
        content: dict[str, Any] = {
            "tool": "fetch",
            "url": self.url,
            "final_url": self.final_url,
            "method": self.method,
            "status": self.status,
            "headers": r.redact_headers(self.headers),
            "cache": self.cache,
            "hops": [{"url": h.url, "status": h.status, "address": h.address, "rule": h.rule} for h in self.hops],
            "bytes": len(self.body),
            "sha256": self.sha256,
            "elapsed_ms": self.elapsed_ms,
        }
        if text is not None:
            content["body_truncated"] = len(text) > body_max
            content["body"] = r.clean(text[:body_max])
        return content


@dataclass
class FetchLimits:
    max_bytes: int = 2 * 1024 * 1024
    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    max_redirects: int = 5


@dataclass
class SafeFetcher:
    """The fetch tool's engine. ``resolver`` and ``network`` are seams: tests stub both so that
    no packet leaves loopback, and production uses the system resolver and real sockets."""

    policy: PolicyHook
    purpose: str = "fetch"
    resolver: Resolver = field(default_factory=Resolver)
    network: httpcore.AsyncNetworkBackend | None = None
    limits: FetchLimits = field(default_factory=FetchLimits)
    cache: FetchCache | None = field(default_factory=FetchCache)
    redactor: Redactor | None = None
    ssl_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.network is None:
            self.network = httpcore.AnyIOBackend()

    async def fetch(
        self, url: str, *, method: str = "GET", max_bytes: int | None = None, identity: str | None = None
    ) -> FetchResult:
        """Fetch ``url`` (GET or HEAD) within the limits; raises ``PolicyDenied`` or ``FetchFailed``."""
        method = method.upper()
        if method not in ("GET", "HEAD"):
            raise PolicyDenied("method:not-allowed", f"{method} is not fetched (GET or HEAD only)")
        limit = self.limits.max_bytes if max_bytes is None else min(max_bytes, self.limits.max_bytes)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.limits.timeout_s):
                return await self._fetch(url, method, limit, identity, started)
        except TimeoutError:
            raise FetchFailed(
                "timeout", f"fetch did not finish within {self.limits.timeout_s:g} s", retriable=True
            ) from None

    async def _fetch(self, url: str, method: str, limit: int, identity: str | None, started: float) -> FetchResult:
        r = self.redactor or default_redactor()
        hops: list[Hop] = []
        current = url
        for _ in range(self.limits.max_redirects + 1):
            entry = self.cache.get(method, current) if self.cache is not None else None
            if entry is not None and self.cache is not None and self.cache.is_fresh(entry):
                decision = await self.policy.outbound(Outbound(current, self.purpose, method, identity))
                log_decision("outbound", decision, r.redact_url(current), source=self.purpose)
                decision.raise_for_denial()
                hops.append(Hop(r.redact_url(current), entry.status, "", decision.rule))
                return self._result(
                    url, current, method, entry.status, dict(entry.headers), entry.body, "hit", hops, started
                )
            vetted = await vet_outbound(
                self.policy, current, purpose=self.purpose, resolver=self.resolver, method=method, identity=identity,
                redactor=r,
            )  # fmt: skip
            conditional = entry.validators if entry is not None else {}
            status, headers, body = await self._request(vetted, method, limit, conditional)
            hops.append(Hop(r.redact_url(current), status, vetted.address, vetted.decisions[-1].rule))
            if status in _REDIRECTS and "location" in headers:
                # Only GET and HEAD are fetched, so every redirect keeps its method.
                current = urljoin(current, headers["location"])
                continue
            if status == 304 and entry is not None and self.cache is not None:
                fresh = self.cache.refreshed(method, current, entry, headers)
                return self._result(url, current, method, fresh.status, dict(fresh.headers), fresh.body, "revalidated",
                                    hops, started)  # fmt: skip
            if self.cache is not None and method == "GET":
                self.cache.store(method, current, status, headers, body)
            return self._result(url, current, method, status, headers, body, "miss", hops, started)
        raise FetchFailed("redirects", f"more than {self.limits.max_redirects} redirects")

    def _result(
        self, url: str, final: str, method: str, status: int, headers: dict[str, str], body: bytes, cache: str,
        hops: list[Hop], started: float,
    ) -> FetchResult:  # fmt: skip
        r = self.redactor or default_redactor()
        return FetchResult(
            r.redact_url(url), r.redact_url(final), method, status, headers, body, cache, tuple(hops),
            int((time.perf_counter() - started) * 1000),
        )  # fmt: skip

    async def _request(
        self, vetted: Vetted, method: str, limit: int, conditional: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        target = vetted.target
        assert self.network is not None
        backend = PinnedBackend(target.host, target.port, vetted.address, self.network)
        parts = urlsplit(target.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request_url = httpcore.URL(scheme=target.scheme.encode(), host=target.host.encode(), port=target.port,
                                   target=path.encode())  # fmt: skip
        headers = [
            (b"Host", target.authority.encode()),
            (b"User-Agent", USER_AGENT.encode()),
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"identity"),
            *((k.encode(), v.encode()) for k, v in conditional.items()),
        ]
        timeouts = {
            "connect": self.limits.connect_timeout_s,
            "read": self.limits.read_timeout_s,
            "write": self.limits.read_timeout_s,
            "pool": self.limits.connect_timeout_s,
        }
        try:
            async with (
                httpcore.AsyncConnectionPool(
                    ssl_context=self.ssl_context, network_backend=backend, max_connections=1, retries=0
                ) as pool,
                pool.stream(method, request_url, headers=headers, extensions={"timeout": timeouts}) as response,
            ):
                kept = _kept_headers(response.headers)
                if method == "HEAD" or response.status in _REDIRECTS or response.status == 304:
                    return response.status, kept, b""
                declared = kept.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise FetchFailed("too_large", f"the body is {declared} bytes, over the limit of {limit}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_stream():
                    size += len(chunk)
                    if size > limit:
                        raise FetchFailed("too_large", f"the body is over the limit of {limit} bytes")
                    chunks.append(chunk)
                return response.status, kept, b"".join(chunks)
        except httpcore.TimeoutException:
            raise FetchFailed("timeout", f"{target.host} did not answer in time", retriable=True) from None
        except (httpcore.ConnectError, OSError):
            raise FetchFailed("connect", f"could not connect to {target.host}", retriable=True) from None
        except httpcore.ProtocolError:
            raise FetchFailed("protocol", f"{target.host} answered something that is not HTTP") from None
        except httpcore.NetworkError:
            raise FetchFailed("connect", f"the connection to {target.host} failed", retriable=True) from None


def _kept_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in _KEPT_HEADERS:
            kept[key] = value.decode("latin-1")
    return kept
