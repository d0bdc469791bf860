"""orchestratord on loopback in a background thread, for code that blocks: the sync client, the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from llama_orch.server.app import create_app
from llama_orch.server.config import OrchestratorConfig
from tests.conftest import fast_config, free_port


@contextmanager
def threaded_server(config: OrchestratorConfig | None = None) -> Iterator[str]:
    """Serve ``config`` (default :func:`fast_config`) on 127.0.0.1; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(config or fast_config()), handle_signals=False)
    port = free_port()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        except BaseException as exc:  # reported to the test thread
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name=f"orchestratord-{port}", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
