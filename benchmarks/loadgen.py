"""Admission load generator: N concurrent workers POSTing one JSON body on keep-alive connections.

Runs as its own process (pinned by the caller). A warm-up phase is run and thrown away, then a
measured phase bounded both in time (``--duration``) and in count (``--max-requests``). Each
request's latency is taken with ``time.perf_counter``. Prints one JSON line with the result.

``python -m benchmarks.loadgen --url http://127.0.0.1:9000/v1/tasks --body-file body.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp

from benchmarks._common import percentile, sched_seconds


@dataclass
class Tally:
    warm_end: float
    end: float
    max_requests: int
    issued: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    last_done: float = 0.0


async def _worker(
    session: aiohttp.ClientSession, url: str, body: bytes, tally: Tally, extra: dict[str, str] | None = None
) -> None:
    headers = {"Content-Type": "application/json", **(extra or {})}
    perf = time.perf_counter
    while True:
        t0 = perf()
        if t0 >= tally.end:
            return
        measured = t0 >= tally.warm_end
        if measured:
            if tally.issued >= tally.max_requests:
                return
            tally.issued += 1
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            if measured:
                tally.errors += 1
            continue
        t1 = perf()
        if measured:
            tally.latencies.append(t1 - t0)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            tally.last_done = t1


class _RawConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a prebuilt request and parses just enough of the answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        at = head.find(b"content-length:")
        if at < 0:
            self._done(ConnectionError("answer without content-length"))
            return
        stop = head.find(b"\r\n", at)
        length = int(head[at + 15 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        status = int(self.buf[9:12])
        self.buf = self.buf[total:]
        self._done(status)

    def _done(self, outcome: int | BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done(exc or ConnectionError("connection closed"))


async def _raw_worker(url: str, body: bytes, tally: Tally, extra: dict[str, str] | None = None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    more = "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{more}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    perf = time.perf_counter
    conn: _RawConn | None = None
    try:
        while True:
            t0 = perf()
            if t0 >= tally.end:
                return
            measured = t0 >= tally.warm_end
            if measured:
                if tally.issued >= tally.max_requests:
                    return
                tally.issued += 1
            try:
                if conn is None or conn.transport is None or conn.transport.is_closing():
                    _, conn = await loop.create_connection(_RawConn, host, port)
                    t0 = perf()  # connecting is not part of the request's latency
                assert conn.transport is not None
                conn.waiter = loop.create_future()
                conn.transport.write(request)
                status = await asyncio.wait_for(conn.waiter, 10)
            except (OSError, ValueError, TimeoutError):
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
                if measured:
                    tally.errors += 1
                continue
            t1 = perf()
            if measured:
                tally.latencies.append(t1 - t0)
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
                tally.last_done = t1
    finally:
        if conn is not None and conn.transport is not None:
            conn.transport.close()


async def run(
    url: str,
    body: bytes,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
    server_pid: int,
    client: str = "aiohttp",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        tally = Tally(warm_end=t0 + warmup_s, end=t0 + warmup_s + duration_s, max_requests=max_requests)
        if client == "raw":
            workers = [asyncio.create_task(_raw_worker(url, body, tally, headers)) for _ in range(concurrency)]
        else:
            workers = [asyncio.create_task(_worker(session, url, body, tally, headers)) for _ in range(concurrency)]
        # Sample CPU use (and time spent waiting for a CPU) of both sides over the measured phase.
        await asyncio.sleep(max(0.0, tally.warm_end - time.perf_counter()))
        srv0, me0, w0 = sched_seconds(server_pid), sched_seconds(os.getpid()), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*workers), timeout=warmup_s + duration_s + 30)
        srv1, me1, w1 = sched_seconds(server_pid), sched_seconds(os.getpid()), time.perf_counter()
    lat = sorted(tally.latencies)
    window = (tally.last_done - tally.warm_end) if tally.last_done > tally.warm_end else float("nan")
    ok = sum(n for s, n in tally.statuses.items() if s == 202)
    return {
        "concurrency": concurrency,
        "body_bytes": len(body),
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "max_requests": max_requests,
        "requests": len(lat),
        "accepted_202": ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": tally.errors,
        "window_s": round(window, 3),
        "tasks_per_s": round(ok / window, 1) if lat else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 3),
        "p99_ms": round(percentile(lat, 99) * 1000, 3),
        "max_ms": round(lat[-1] * 1000, 3) if lat else float("nan"),
        "client": client,
        "server_cpu_pct": round(100 * (srv1[0] - srv0[0]) / (w1 - w0), 1),
        "server_cpu_wait_pct": round(100 * (srv1[1] - srv0[1]) / (w1 - w0), 1),
        "loadgen_cpu_pct": round(100 * (me1[0] - me0[0]) / (w1 - w0), 1),
        "loadgen_cpu_wait_pct": round(100 * (me1[1] - me0[1]) / (w1 - w0), 1),
        "server_cpu_us_per_request": round(1e6 * (srv1[0] - srv0[0]) / max(1, ok), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured warm-up")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds measured at most")
    parser.add_argument("--max-requests", type=int, default=500_000, help="requests measured at most")
    parser.add_argument("--server-pid", type=int, required=True, help="whose CPU use to report")
    parser.add_argument(
        "--client",
        choices=["aiohttp", "raw"],
        default="aiohttp",
        help="aiohttp's client, or a minimal asyncio-protocol HTTP/1.1 client (far less CPU per request)",
    )
    parser.add_argument("--header", action="append", default=[], help="extra request header NAME:VALUE (repeatable)")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run(
            args.url,
            args.body_file.read_bytes(),
            args.concurrency,
            args.warmup,
            args.duration,
            args.max_requests,
            args.server_pid,
            args.client,
            {k.strip(): v.strip() for k, v in headers.items()},
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
