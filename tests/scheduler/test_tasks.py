"""TaskRecord (scheduler/_tasks.py): token frames are byte-for-byte the frames of the plain construction."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.policy import Redactor
from llama_orch.scheduler import Reader, TaskRecord, TaskState
from llama_orch.scheduler._tasks import frame, redact_tokens
from llama_orch_api import TaskRequest
from tests.conftest import parse_sse

# Any text an engine adapter can yield: every code point, lone surrogates included (a str from a
# JSON "\ud800" escape holds one), with quotes, backslashes and control characters made likely.
TOKEN = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, categories=None),
        st.sampled_from('"\\/\x00\x1f\x7f\n\r\t\u2028\u00e9\U0001f600\ud800\udfff'),
    ),
    max_size=12,
)


def record() -> TaskRecord:
    return TaskRecord("t1", TaskRequest(prompt="hi", max_tokens=4), "p", queue_position=0, predicted_start_ms=0)


def plain_frames(start_id: int, start_index: int, tokens: list[str]) -> list[bytes]:
    """The construction emit_tokens replaced: the f-string around json.dumps, then frame()."""
    return [
        frame(start_id + k, "token", f'{{"t":{json.dumps(t)},"i":{start_index + k}}}') for k, t in enumerate(tokens)
    ]


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(TOKEN, max_size=6), max_size=5), others=st.integers(0, 3))
def test_token_frames_are_the_plain_construction(batches: list[list[str]], others: int) -> None:
    rec = record()
    for _ in range(others):  # frames before the tokens: ids and token indexes differ
        rec.emit("queued", '{"queue_position":0,"predicted_start_ms":0}')
    expected = list(rec.frames)
    for batch in batches:
        expected += plain_frames(len(expected) + 1, rec.tokens_out, batch)
        assert rec.emit_tokens(batch)
    assert rec.frames == expected
    assert rec.tokens_out == sum(map(len, batches))


def test_a_token_frame_spelled_out() -> None:
    rec = record()
    rec.emit_tokens(['say "hi"\n', "é\ud800", "\x00"])
    assert rec.frames == [
        b'id: 1\nevent: token\ndata: {"t":"say \\"hi\\"\\n","i":0}\n\n',
        b'id: 2\nevent: token\ndata: {"t":"\\u00e9\\ud800","i":1}\n\n',
        b'id: 3\nevent: token\ndata: {"t":"\\u0000","i":2}\n\n',
    ]


def test_no_tokens_after_the_end() -> None:
    rec = record()
    rec.emit_tokens(["a"])
    assert rec.finish("end", "{}", rec.state)
    assert not rec.emit_tokens(["b"])
    assert len(rec.frames) == 2 and rec.tokens_out == 1


async def test_a_reader_wakes_on_frames_and_times_out_on_silence() -> None:
    loop = asyncio.get_running_loop()
    rec = record()
    reader = Reader(rec, heartbeat_s=0.05)
    try:
        started = loop.time()
        reader.wrote()
        assert await reader.wait(0) is False  # nothing readable: the heartbeat ends the wait
        assert loop.time() - started >= 0.9 * 0.05  # silence counts from the last write
        reader.wrote()  # (the keep-alive the stream writes then)
        loop.call_later(0.01, rec.emit_tokens, ["a"])  # no journal: readable at once
        assert await reader.wait(0) is True and rec.readable == 1
        for n in range(1, 50):  # many waits, each woken by a frame; the one timer is not re-made per wait
            loop.call_soon(rec.emit_tokens, [f"t{n}"])
            assert await reader.wait(n) is True
        assert rec.readable == 50 and not rec._waiters  # every waiter notified and gone
        rec.finish("end", "{}", TaskState.done)
        assert await reader.wait(rec.readable) is True  # ended: nothing to wait for
    finally:
        reader.close()


# -- secrets split across token frames (redact_tokens) -----------------------------------------


def _log(tokens: list[str]) -> str:
    rec = TaskRecord("t", TaskRequest(prompt="x", max_tokens=64), "p", queue_position=0, predicted_start_ms=0)
    rec.emit("metrics", '{"queue_position":0}')
    rec.emit_tokens(tokens)
    rec.finish("end", f'{{"tokens_out":{len(tokens)},"decode_time_ms":1}}', TaskState.done)
    return b"".join(rec.frames).decode()


def test_redact_tokens_hides_a_secret_split_across_frames() -> None:
    secret = "canäry-5e1f0c2b9d7a4e63"  # non-ASCII: in the log only as \u escapes
    redactor = Redactor(literals=[secret])
    tokens = ["say", " can", "äry-5e1", "f0c2b9d7a4e63", ' "quoted\\"', " sk-abcdefgh", "ijklmnop12345678", " end"]
    text = _log(tokens)
    assert redactor.clean(text) == text  # frame by frame there is nothing to hide
    out = redact_tokens(text, redactor.redact_pieces)
    events = parse_sse(out)
    assert [e.id for e in events] == [e.id for e in parse_sse(text)]  # same frames, same ids
    got = [e.data["t"] for e in events if e.event == "token"]
    assert got == ["say", " [REDACTED]", "", "", ' "quoted\\"', " [REDACTED]", "", " end"]
    assert [e.data["i"] for e in events if e.event == "token"] == list(range(len(tokens)))
    assert secret not in "".join(got) and "sk-abcdefgh" not in out
    # frames no secret touches are kept byte for byte, the others are rewritten in place
    kept = [f for f in text.split("\n\n") if f and ('"t":"say"' in f or "metrics" in f or "event: end" in f)]
    assert all(f in out for f in kept)


def test_redact_tokens_leaves_a_clean_log_as_it_is() -> None:
    text = _log(["plain", " words", " only"])
    assert redact_tokens(text, Redactor().redact_pieces) is text
    assert redact_tokens("", Redactor().redact_pieces) == ""


def test_redact_tokens_leaves_a_log_cut_inside_a_token_frame_to_the_frame_by_frame_pass() -> None:
    text = _log(["say", " sk-abcd", "efghijklmnop1234"])
    cut = text[: text.rindex(',"i":2}')]  # the last token frame loses its end
    assert redact_tokens(cut, Redactor().redact_pieces) is cut
