"""What both sides of our HTTP boundaries read the same way: Server-Sent Events and wait advice.

The SDK (:mod:`llama_orch.client`) reads orchestratord's streams and its 429/503 answers; the engine
adapters (:mod:`llama_orch.engines`) read the engines' streams and their 429/503 answers. Both use
the pieces here, so a fix to either reader is a fix on both sides:

* :class:`SSEParser` — a pure, incremental ``text/event-stream`` parser (the WHATWG rules);
* :func:`retry_after_ms` — the wait a server advised, from ``X-Backoff-Ms``, ``retry-after-ms`` or
  ``Retry-After``.

Layering: this package uses the standard library only and imports nothing of ``llama_orch``, so any
room may import it (the SDK, which otherwise imports only the API types, included). It is private
to the distribution: the SDK re-exports :class:`SSEParser` and :class:`ServerSentEvent` as its own
public names.
"""

from __future__ import annotations

from llama_orch._wire._backoff import retry_after_ms
from llama_orch._wire._sse import ServerSentEvent, SSEParser

__all__ = ["SSEParser", "ServerSentEvent", "retry_after_ms"]
