"""A Server-Sent Events parser: pure, incremental, no I/O.

The one parser for every event stream we read: the SDK reads orchestratord's task streams with it,
the engine adapters read llama.cpp's, vLLM's, TGI's, Triton's and OpenAI-compatible servers' with
it. Feed it bytes (or text) as they arrive, split anywhere; it returns the events completed so far.
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

One extension, off unless asked for: ``SSEParser(fields_as_events=("error",))`` reads a line of a
listed field, ``error: {...}``, as ``event: error`` plus ``data: {...}``. Some llama-server builds
write a failure inside a stream that way, with a field the rules above would ignore.

>>> parser = SSEParser()
>>> parser.feed(b"id: 1\\nevent: token\\ndata: {\\"t\\": \\"hi\\"")
[]
>>> parser.feed(b", \\"i\\": 0}\\n\\n")
[ServerSentEvent(event='token', data='{"t": "hi", "i": 0}', id='1', retry=None)]
"""

from __future__ import annotations

import codecs
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["SSEParser", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: ``event`` defaults to ``message``; ``id`` is the last event id seen."""

    event: str
    data: str
    id: str | None
    retry: int | None


# The relay parses every token an engine sends, so an event is made the cheap way: a frozen
# dataclass's __init__ calls object.__setattr__ once per field, while its slot descriptors set the
# same fields in half the time. The result is the same immutable, comparable ServerSentEvent.
_new_event = object.__new__
_set_event, _set_data, _set_id, _set_retry = (
    ServerSentEvent.__dict__[name].__set__ for name in ("event", "data", "id", "retry")
)


def _make_event(event: str, data: str, last_id: str | None, retry: int | None) -> ServerSentEvent:
    made = _new_event(ServerSentEvent)
    _set_event(made, event)
    _set_data(made, data)
    _set_id(made, last_id)
    _set_retry(made, retry)
    return made


class SSEParser:
    """Incremental ``text/event-stream`` parser; one instance per connection.

    Each chunk is decoded (an incremental UTF-8 decoder joins characters split across chunks), its
    line endings are normalised to LF, and the complete lines are split off with ``str.split``; only
    the unfinished last line is kept for the next chunk. So a read costs one pass over its bytes
    plus a few operations per line, which keeps the engine relay's hot path cheap.
    """

    __slots__ = (
        "_data", "_decoder", "_event", "_extra", "_partial", "_pending", "_skip_lf", "_started", "last_event_id",
        "retry",
    )  # fmt: skip

    def __init__(self, *, fields_as_events: Collection[str] = ()) -> None:
        self._extra = frozenset(fields_as_events) - {"data", "event", "id", "retry"}
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = False  # the decoder holds the first bytes of a character
        self._partial = ""  # the unfinished last line
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF is its other half
        self._started = False  # the BOM is only stripped at the very start of the stream
        self._event = ""
        self._data: list[str] | None = None  # None: no data line in this event yet
        self.last_event_id: str | None = None
        """The last ``id:`` seen; survives dispatches, as the spec's "last event ID buffer"."""
        self.retry: int | None = None
        """The last valid ``retry:`` value, in milliseconds."""

    def feed(self, chunk: bytes | str) -> list[ServerSentEvent]:
        """Parse ``chunk``; return the events it completed, in order."""
        if isinstance(chunk, str):
            text = chunk
        elif chunk.isascii() and not self._pending:
            text = chunk.decode("ascii")  # most reads: no character to join, none left open
        else:
            text = self._decoder.decode(chunk)
            self._pending = bool(self._decoder.getstate()[0])
        return self._consume(text) if text else []

    def close(self) -> list[ServerSentEvent]:
        """End of stream: flush the decoder. An event not ended by a blank line is discarded."""
        tail = self._decoder.decode(b"", final=True)
        events = self._consume(tail) if tail else []
        self._pending = False
        self._partial = ""
        self._event, self._data = "", None
        return events

    def _consume(self, text: str) -> list[ServerSentEvent]:
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if "\r" in text:
            # A CR that ends the chunk ends a line now; its LF, if one comes, starts the next chunk.
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = self._partial + text
        events: list[ServerSentEvent] = []
        if text[:5] == "data:" and self._data is None and not self._event:
            # An engine's read, between events: split it at the blank lines that end events. An
            # event that is one ``data:`` line (every token) is made right there; any other goes
            # through the line rules, and so does the tail. (Other streams, orchestratord's own
            # with ``id:`` and ``event:`` lines, go through the line rules only, just below.)
            blocks = text.split("\n\n")
            text = blocks.pop()
            for block in blocks:
                if block[:5] == "data:" and "\n" not in block:
                    data = block[6:] if block[5:6] == " " else block[5:]
                    events.append(_make_event("message", data, self.last_event_id, self.retry))
                    continue
                for line in block.split("\n"):
                    if not line:  # only first, after a third LF in a row: nothing to dispatch
                        continue
                    if line[0] != ":":
                        self._field(line)
                # The blank line after the block.
                if self._data is not None:
                    data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
                    events.append(_make_event(self._event or "message", data, self.last_event_id, self.retry))
                    self._data = None
                self._event = ""
            if not text:
                self._partial = ""
                return events
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            if not line:
                if self._data is not None:
                    data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
                    events.append(_make_event(self._event or "message", data, self.last_event_id, self.retry))
                self._event, self._data = "", None
            elif line[0] != ":":
                self._field(line)
        return events

    def _field(self, line: str) -> None:
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        elif name in self._extra:
            self._event = name
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
