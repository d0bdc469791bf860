"""A Server-Sent Events parser: pure, incremental, no I/O.

Feed it bytes (or text) as they arrive, split anywhere; it returns the events completed so far.
It follows the WHATWG ``text/event-stream`` interpretation rules:

* lines end with CRLF, LF or CR, and a CR at the end of one chunk followed by LF at the start of
  the next is one line ending;
* bytes are UTF-8 (a character split across chunks is joined; a leading BOM is dropped);
* ``: comment`` lines are ignored (the server's ``: keep-alive`` heartbeats);
* ``data:`` lines accumulate, joined by ``\\n``; a blank line dispatches the event, and an event
  with no data is not dispatched;
* ``id:`` sets the last event id (kept for later events; ignored when it contains NUL);
* ``retry:`` with only ASCII digits sets the reconnection delay in milliseconds;
* one space after the colon is dropped; a line without a colon is a field with an empty value;
* unknown fields are ignored; at the end of the stream an unfinished event is discarded.

>>> parser = SSEParser()
>>> parser.feed(b"id: 1\\nevent: token\\ndata: {\\"t\\": \\"hi\\"")
[]
>>> parser.feed(b", \\"i\\": 0}\\n\\n")
[ServerSentEvent(event='token', data='{"t": "hi", "i": 0}', id='1', retry=None)]
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEParser", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: ``event`` defaults to ``message``; ``id`` is the last event id seen."""

    event: str
    data: str
    id: str | None
    retry: int | None


class SSEParser:
    """Incremental ``text/event-stream`` parser; one instance per connection."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF is its other half
        self._started = False  # the BOM is only stripped at the very start of the stream
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self.last_event_id: str | None = None
        """The last ``id:`` seen; survives dispatches, as the spec's "last event ID buffer"."""
        self.retry: int | None = None
        """The last valid ``retry:`` value, in milliseconds."""

    def feed(self, chunk: bytes | str) -> list[ServerSentEvent]:
        """Parse ``chunk``; return the events it completed, in order."""
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        return self._consume(text)

    def close(self) -> list[ServerSentEvent]:
        """End of stream: flush the decoder. An event not ended by a blank line is discarded."""
        events = self._consume(self._decoder.decode(b"", final=True))
        self._buffer = ""
        self._reset_event()
        return events

    def _consume(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        buffer = self._buffer + text
        events: list[ServerSentEvent] = []
        start = 0
        size = len(buffer)
        while start < size:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            else:
                end = cr
                if cr + 1 < size:
                    next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
                else:
                    # A CR at the end of what we have: its LF, if any, comes with the next chunk.
                    next_start = cr + 1
                    self._skip_lf = True
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._has_data:
            self._reset_event()
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self.last_event_id,
            retry=self.retry,
        )
        self._reset_event()
        return event

    def _reset_event(self) -> None:
        self._event = ""
        self._data = []
        self._has_data = False
