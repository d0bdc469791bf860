"""A TCP proxy for tests that cuts the first few task streams after some bytes (a dropped connection)."""

from __future__ import annotations

import asyncio
import contextlib

from tests.conftest import free_port


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; the first ``cut_streams`` responses of
    ``GET …/stream`` are cut after ``cut_after`` bytes. One request per connection (give the client
    a transport without keep-alive). ``heads`` records every request head seen."""

    def __init__(self, upstream: str, *, cut_streams: int, cut_after: int) -> None:
        host_port = upstream.removeprefix("http://")
        self._up_host, port = host_port.split(":")
        self._up_port = int(port)
        self.cut_streams = cut_streams
        self.cut_after = cut_after
        self.heads: list[bytes] = []
        self._cut = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> CuttingProxy:
        port = free_port()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    @property
    def stream_heads(self) -> list[bytes]:
        return [h for h in self.heads if b"/stream " in h.split(b"\r\n", 1)[0]]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            cut = b"/stream " in head.split(b"\r\n", 1)[0] and self._cut < self.cut_streams
            self._cut += cut
            up_reader, up_writer = await asyncio.open_connection(self._up_host, self._up_port)
            up_writer.write(head)
            upload = asyncio.create_task(self._pipe(reader, up_writer))
            self._tasks.add(upload)
            sent = 0
            try:
                while data := await up_reader.read(65536):
                    if cut and sent + len(data) >= self.cut_after:
                        writer.write(data[: self.cut_after - sent])
                        await writer.drain()
                        break
                    writer.write(data)
                    await writer.drain()
                    sent += len(data)
            finally:
                upload.cancel()
                self._tasks.discard(upload)
                up_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
