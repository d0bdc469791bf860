"""The pieces the HTTP adapters share: SSE decoding, Retry-After parsing, error messages."""

from __future__ import annotations

import email.utils
import time

import pytest
from multidict import CIMultiDict

from llama_orch.engines._http import SseDecoder, error_message, message_of, retry_after_ms

STREAM = (
    b": keep-alive\n\n"
    b'data: {"t": "a"}\n\n'
    b'data:{"t": "b"}\r\n\r\n'  # no space after the colon, CRLF line ends
    b"event: message\nid: 3\ndata: first line\ndata: second line\n\n"
    b'data: {"t": "w\xc3\xb6rld"}\n\n'
    b"retry: 100\n\n"  # an event with no data dispatches nothing
    b"data: [DONE]\n\n"
    b"data: unfinished"
)
EVENTS = [b'{"t": "a"}', b'{"t": "b"}', b"first line\nsecond line", b'{"t": "w\xc3\xb6rld"}', b"[DONE]"]


def test_decoder_in_one_read() -> None:
    assert SseDecoder().feed(STREAM) == EVENTS


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_decoder_gives_the_same_events_wherever_a_read_ends(cut: int) -> None:
    decoder = SseDecoder()
    assert decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) == EVENTS


def test_decoder_byte_by_byte() -> None:
    decoder = SseDecoder()
    assert [event for i in range(len(STREAM)) for event in decoder.feed(STREAM[i : i + 1])] == EVENTS


def test_decoder_keeps_an_unfinished_event_for_the_next_read() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.feed(b"\n") == [b"x"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, 1000, id="none"),
        pytest.param({"Retry-After": "7"}, 7000, id="seconds"),
        pytest.param({"retry-after": "0.25"}, 250, id="fraction-any-case"),
        pytest.param({"retry-after-ms": "120", "Retry-After": "9"}, 120, id="ms-first"),
        pytest.param({"retry-after-ms": "soon", "Retry-After": "2"}, 2000, id="bad-ms"),
        pytest.param({"Retry-After": "-3"}, 0, id="negative"),
        pytest.param({"Retry-After": "nan"}, 1000, id="nan"),
        pytest.param({"Retry-After": "inf"}, 1000, id="inf"),
        pytest.param({"Retry-After": "later"}, 1000, id="garbage"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0, id="past-date"),
    ],
)
def test_retry_after(headers: dict[str, str], expected: int) -> None:
    assert retry_after_ms(CIMultiDict(headers)) == expected


def test_retry_after_future_date() -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert 0 < retry_after_ms(CIMultiDict({"Retry-After": when})) <= 3_600_000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"error": {"message": "m1", "type": "t", "code": 400}}, "m1", id="openai"),
        pytest.param({"object": "error", "message": "m2", "type": "BadRequestError", "code": 400}, "m2", id="vllm"),
        pytest.param({"error": "m3", "error_type": "validation"}, "m3", id="tgi"),
        pytest.param({"detail": "m4"}, "m4", id="fastapi"),
        pytest.param({"detail": [{"loc": ["body"]}]}, None, id="unknown"),
        pytest.param([1], None, id="list"),
    ],
)
def test_message_of(body: object, message: str | None) -> None:
    assert message_of(body) == message


def test_error_message_falls_back_to_the_body() -> None:
    assert error_message('{"error": "queue full"}') == "queue full"
    assert error_message("<html>502 Bad Gateway</html>\n") == "<html>502 Bad Gateway</html>"
    assert len(error_message("x" * 10_000)) == 500
