"""Recorded engine responses (``tests/engines/recorded/<engine>/<name>.http``) and their replay.

A recording is one HTTP response as the engine wrote it: the status line, the headers, a blank
line, then the body bytes exactly (for a stream, its SSE events). Lines starting with ``#`` before
the status line say where the recording comes from. Framing headers (``Content-Length``,
``Transfer-Encoding``) are not kept: the replaying server frames the body itself.

The replay handlers serve a recording whole, cut into awkward reads, cut short (with the
connection dropped or closed cleanly), or its first event over and over until the client hangs up
(the cancel case). ``recorded/README.md`` lists every file and its source.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web

from tests.engines._fake import FAKE_KEY, Handler, awkward_pieces

RECORDED = Path(__file__).parent / "recorded"
_FRAMING = {"content-length", "transfer-encoding"}


@dataclass(frozen=True)
class Recording:
    """One recorded HTTP response."""

    name: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source: tuple[str, ...]

    def events(self) -> list[bytes]:
        """The body cut after each blank line that ends an event: the SSE events, in order, as bytes."""
        pieces, start = [], 0
        while (end := self.body.find(b"\n\n", start)) >= 0:
            pieces.append(self.body[start : end + 2])
            start = end + 2
        if start < len(self.body):
            pieces.append(self.body[start:])
        return pieces


@cache
def load(engine: str, name: str) -> Recording:
    """``recorded/<engine>/<name>.http``."""
    path = RECORDED / engine / f"{name}.http"
    raw = path.read_bytes()
    source: list[str] = []
    while raw.startswith(b"#"):
        line, _, raw = raw.partition(b"\n")
        source.append(line[1:].strip().decode())
    head, sep, body = raw.partition(b"\n\n")
    if not sep:
        raise ValueError(f"{path}: no blank line after the headers")
    status_line, *header_lines = head.decode().splitlines()
    version, status, reason = [*status_line.split(" ", 2), ""][:3]
    if not version.startswith("HTTP/"):
        raise ValueError(f"{path}: {status_line!r} is not a status line")
    headers = []
    for line in header_lines:
        key, _, value = line.partition(":")
        if key.strip().lower() not in _FRAMING:
            headers.append((key.strip(), value.strip()))
    return Recording(name, int(status), reason, tuple(headers), body, tuple(source))


async def _start(request: web.Request, recording: Recording) -> web.StreamResponse:
    response = web.StreamResponse(status=recording.status, reason=recording.reason or None)
    for key, value in recording.headers:
        response.headers.add(key, value)
    await response.prepare(request)
    return response


def replay(recording: Recording, *, pieces: list[bytes] | None = None, drop: bool = False) -> Handler:
    """Answer with ``recording``: its body in one write, or in ``pieces``; ``drop`` aborts the
    connection after them instead of ending the body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await _start(request, recording)
        for piece in [recording.body] if pieces is None else pieces:
            await response.write(piece)
            await asyncio.sleep(0)
        if drop:
            assert request.transport is not None
            request.transport.abort()
        else:
            await response.write_eof()
        return response

    return handler


def split(recording: Recording) -> Handler:
    """The whole body, cut mid-line, inside UTF-8 characters and between the two LFs ending an event."""
    return replay(recording, pieces=awkward_pieces(recording.body))


def first_events(recording: Recording, count: int, *, drop: bool) -> Handler:
    """The first ``count`` events, one write each; then the connection drops, or the body ends."""
    return replay(recording, pieces=recording.events()[:count], drop=drop)


def endless(recording: Recording) -> Handler:
    """The recording's first event again and again until the client hangs up (counted by the fake)."""
    event = recording.events()[0]

    async def handler(request: web.Request) -> web.StreamResponse:
        fake = request.app[FAKE_KEY]
        response = await _start(request, recording)
        try:
            for _ in range(100_000):  # bounded: 100,000 events at 5 ms would take over 8 minutes
                await response.write(event)
                await asyncio.sleep(0.005)  # pacing only; nothing is timed
        except ConnectionError:
            fake.disconnects += 1
        except asyncio.CancelledError:
            fake.disconnects += 1
            raise
        return response

    return handler
