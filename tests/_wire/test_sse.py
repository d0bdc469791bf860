"""The one SSE parser (SDK and engine adapters): the spec's rules, and fuzzing of chunking and line endings."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llama_orch.client
from llama_orch._wire import ServerSentEvent, SSEParser

FUZZ = settings(max_examples=150, deadline=None)


def parse_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def reference(text: str) -> list[ServerSentEvent]:
    """A deliberately plain second implementation: whole text, regex line split, spec steps."""
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the part after the last line ending is unfinished
    events: list[ServerSentEvent] = []
    name, data, last_id, retry = "", None, None, None
    for line in lines:
        if line == "":
            if data is not None:
                events.append(ServerSentEvent(name or "message", "\n".join(data), last_id, retry))
            name, data = "", None
            continue
        if line[0] == ":":
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value[:1] == " " else value
        if field == "data":
            data = [*(data or []), value]
        elif field == "event":
            name = value
        elif field == "id" and "\x00" not in value:
            last_id = value
        elif field == "retry" and re.fullmatch(r"[0-9]+", value):
            retry = int(value)
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for point in points:
        out.append(data[start:point])
        start = point
    out.append(data[start:])
    return out


# -- rules ------------------------------------------------------------------------------------------


def test_a_frame_as_orchestratord_sends_it() -> None:
    events = parse_all([b'id: 4\nevent: token\ndata: {"t":" with","i":0}\n\n'])
    assert events == [ServerSentEvent("token", '{"t":" with","i":0}', "4", None)]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse_all([b"data: a\ndata:b\ndata\ndata:  c\n\n"]) == [ServerSentEvent("message", "a\nb\n\n c", None, None)]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\n\n:another\nfoo: bar\ndata: x\n: in the middle\n\n"
    assert parse_all([stream]) == [ServerSentEvent("message", "x", None, None)]


def test_event_without_data_is_not_dispatched() -> None:
    assert parse_all([b"event: token\nid: 3\n\ndata: y\n\n"]) == [ServerSentEvent("message", "y", "3", None)]


def test_last_event_id_persists_and_nul_ids_are_ignored() -> None:
    events = parse_all([b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\nid\ndata: d\n\n"])
    assert [e.id for e in events] == ["7", "7", "7", ""]


def test_retry_field_only_digits() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 1500\n\nretry: soon\n\nretry: 2x\n\n")
    assert parser.retry == 1500
    assert parse_all([b"retry: 250\ndata: a\n\n"]) == [ServerSentEvent("message", "a", None, 250)]


def test_cr_lf_crlf_and_a_cr_split_from_its_lf() -> None:
    assert parse_all([b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]) == [
        ServerSentEvent("message", "a", None, None),
        ServerSentEvent("message", "b", None, None),
        ServerSentEvent("message", "c", None, None),
    ]
    # The CR ends one chunk and its LF starts the next: one line ending, not an empty line.
    assert parse_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [ServerSentEvent("message", "a\nb", None, None)]


def test_bom_only_at_the_start_and_utf8_split_inside_a_character() -> None:
    raw = "\ufeffdata: héllo ✓\n\n".encode()
    assert parse_all([raw[:1], raw[1:9], raw[9:10], raw[10:]]) == [ServerSentEvent("message", "héllo ✓", None, None)]
    assert parse_all(["data: \ufeffx\n\n".encode()])[0].data == "\ufeffx"


def test_unfinished_event_is_discarded_at_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: half") == [ServerSentEvent("message", "a", None, None)]
    assert parser.close() == []


def test_text_chunks_are_accepted_too() -> None:
    assert SSEParser().feed("event: end\ndata: {}\n\n") == [ServerSentEvent("end", "{}", None, None)]


def test_parsed_events_are_the_frozen_dataclass() -> None:
    (event,) = SSEParser().feed(b"id: 1\ndata: x\n\n")
    assert event == ServerSentEvent("message", "x", "1", None)
    assert hash(event) == hash(ServerSentEvent("message", "x", "1", None))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]


def test_a_listed_nonstandard_field_is_read_as_an_event_of_its_name() -> None:
    # llama-server builds that write a failure inside a stream as an `error:` line, not `data:`.
    stream = b'data: {"content":"a"}\n\nerror: {"code":500,"message":"boom"}\n\n'
    assert SSEParser().feed(stream) == [ServerSentEvent("message", '{"content":"a"}', None, None)]
    assert SSEParser(fields_as_events=("error",)).feed(stream) == [
        ServerSentEvent("message", '{"content":"a"}', None, None),
        ServerSentEvent("error", '{"code":500,"message":"boom"}', None, None),
    ]
    # The spec's own fields keep their meaning whatever is listed.
    assert SSEParser(fields_as_events=("data", "id")).feed(b"id: 4\ndata: x\n\n") == [
        ServerSentEvent("message", "x", "4", None)
    ]


def test_the_sdk_exports_this_parser() -> None:
    assert (llama_orch.client.SSEParser, llama_orch.client.ServerSentEvent) == (SSEParser, ServerSentEvent)


# -- engine streams, as the adapters read them --------------------------------------------------------

ENGINE_STREAM = (
    b": keep-alive\n\n"
    b'data: {"t": "a"}\n\n'
    b'data:{"t": "b"}\r\n\r\n'  # no space after the colon (TGI's axum), CRLF line ends
    b"event: message\nid: 3\ndata: first line\ndata: second line\n\n"
    b'data: {"t": "w\xc3\xb6rld"}\n\n'
    b"retry: 100\n\n"  # an event with no data dispatches nothing
    b"data: [DONE]\n\n"
    b"data: unfinished"
)
ENGINE_DATA = ['{"t": "a"}', '{"t": "b"}', "first line\nsecond line", '{"t": "w\u00f6rld"}', "[DONE]"]


def test_an_engine_stream_in_one_read() -> None:
    assert [e.data for e in SSEParser().feed(ENGINE_STREAM)] == ENGINE_DATA


def test_an_engine_stream_byte_by_byte() -> None:
    parser = SSEParser()
    assert [e.data for i in range(len(ENGINE_STREAM)) for e in parser.feed(ENGINE_STREAM[i : i + 1])] == ENGINE_DATA


def test_an_unfinished_event_waits_for_the_next_read() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"\n") == [ServerSentEvent("message", "x", None, None)]


# -- fuzzing --------------------------------------------------------------------------------------

LINE_TEXT = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=12)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@dataclass
class Frame:
    name: str
    data: list[str]
    id: str | None
    retry: int | None
    comment: str | None


FRAMES = st.builds(
    Frame,
    name=st.sampled_from(["", "token", "started", "metrics", "end", "error"]),
    data=st.lists(LINE_TEXT, min_size=1, max_size=3),
    id=st.one_of(st.none(), st.integers(0, 10**6).map(str)),
    retry=st.one_of(st.none(), st.integers(0, 60_000)),
    comment=st.one_of(st.none(), LINE_TEXT),
)


def serialize(frames: list[Frame], endings: list[str]) -> str:
    out: list[str] = []
    n = 0

    def line(text: str) -> None:
        nonlocal n
        ending = endings[n % len(endings)]
        if not text and ending == "\n" and out and out[-1].endswith("\r"):
            ending = "\r\n"  # CR then a lone LF would read as one CRLF, not an empty line
        out.append(text + ending)
        n += 1

    for frame in frames:
        if frame.comment is not None:
            line(":" + frame.comment)
        if frame.id is not None:
            line("id: " + frame.id)
        if frame.name:
            line("event: " + frame.name)
        if frame.retry is not None:
            line(f"retry: {frame.retry}")
        for part in frame.data:
            line("data: " + part)
        line("")
    return "".join(out)


def expected(frames: list[Frame]) -> list[ServerSentEvent]:
    events, last_id, retry = [], None, None
    for frame in frames:
        last_id = frame.id if frame.id is not None else last_id
        retry = frame.retry if frame.retry is not None else retry
        events.append(ServerSentEvent(frame.name or "message", "\n".join(frame.data), last_id, retry))
    return events


@FUZZ
@given(
    frames=st.lists(FRAMES, max_size=6),
    endings=st.lists(ENDINGS, min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_frames_survive_any_chunking_and_line_endings(frames: list[Frame], endings: list[str], cuts: list[int]) -> None:
    raw = serialize(frames, endings).encode()
    assert parse_all(split_at(raw, cuts)) == expected(frames)


PIECES = ["data", "data:", "data: ", "id: 1", "id:2", "event: x", "retry: 9", ":", ": c", "x", " ", "é", "✓",
          "\r", "\n", "\r\n", "\x00", "\ufeff"]  # fmt: skip
NOISE = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@FUZZ
@given(text=NOISE, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_stream_parses_like_the_reference_however_it_is_split(text: str, cuts: list[int]) -> None:
    raw = text.encode()
    assert parse_all(split_at(raw, cuts)) == reference(text)
    assert parse_all([raw]) == reference(text)


@FUZZ
@given(text=NOISE, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_text_chunks_parse_like_bytes(text: str, cuts: list[int]) -> None:
    parser = SSEParser()
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    events = [e for piece in pieces for e in parser.feed(piece)] + parser.close()
    assert events == reference(text)


# Engine-like streams: whole `data:` events (the parser's fast path) among everything else it must
# still read by the line rules, cut anywhere: the events are the reference's.
ENGINE_PIECES = ['data: {"content":"a","stop":false}\n\n', 'data:{"t":1}\n\n', "data: [DONE]\r\n\r\n",
                 "data: x\ndata: y\n\n", "data: é✓\n\n", "data:\n\n", "data: \n\n", ": keep-alive\n\n",
                 "error: {}\n\n", "id: 5\n", "event: e\n", "retry: 7\n", "\n", "\r", "\r\n", "\n\n\n", "data",
                 "data: a", "\ufeff", "da", "ta: b\n\n", "x\x00"]  # fmt: skip
ENGINE_TEXT = st.lists(st.sampled_from(ENGINE_PIECES), max_size=30).map("".join)


@FUZZ
@given(text=ENGINE_TEXT, cuts=st.lists(st.integers(0), max_size=12))
def test_engine_like_streams_parse_like_the_reference_however_split(text: str, cuts: list[int]) -> None:
    raw = text.encode()
    assert parse_all(split_at(raw, cuts)) == reference(text)
    assert parse_all([raw]) == reference(text)
    # The listed extension changes only `error:` lines: read as `data:` lines of an `error` event.
    parser = SSEParser(fields_as_events=("error",))
    extended = [e for chunk in split_at(raw, cuts) for e in parser.feed(chunk)] + parser.close()
    as_data = re.sub(r"(?:^|(?<=[\r\n]))error: \{\}", "event: error\ndata: {}", text.removeprefix("\ufeff"))
    assert extended == reference(as_data)
