"""relay (scheduler/_relay.py): an engine stream into a task's events, timeouts, early end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest

from llama_orch.errors import EngineError, OrchError
from llama_orch.scheduler import RelayTimeouts, TaskRecord, TaskState, relay
from llama_orch_api import SSE_EVENTS, ErrorCode, TaskRequest

FAST = RelayTimeouts(first_token_s=1.0, token_s=1.0)


def record(max_tokens: int = 4) -> TaskRecord:
    rec = TaskRecord("t1", TaskRequest(prompt="hi", max_tokens=max_tokens), "p", queue_position=0, predicted_start_ms=0)
    rec.started_at = rec.admitted_at
    return rec


def events(rec: TaskRecord) -> list[tuple[str, dict[str, object]]]:
    out = []
    for frame in rec.frames:
        lines = dict(line.split(": ", 1) for line in frame.decode().strip().split("\n"))
        name, data = lines["event"], json.loads(lines["data"])
        SSE_EVENTS[name].model_validate(data)  # every event is the API's model
        out.append((name, data))
    return out


async def stream_of(*batches: list[str], pause_s: float = 0.0) -> AsyncGenerator[list[str], None]:
    for batch in batches:
        if pause_s:
            await asyncio.sleep(pause_s)
        yield batch


async def test_batches_become_token_events_then_end() -> None:
    rec = record(max_tokens=3)
    await relay(stream_of(["a", "b"], ["c"]), rec, FAST, engine="mock", replica_id="p/r0")
    got = events(rec)
    assert got[:3] == [("token", {"t": "a", "i": 0}), ("token", {"t": "b", "i": 1}), ("token", {"t": "c", "i": 2})]
    assert got[3][0] == "end" and got[3][1]["tokens_out"] == 3 and got[3][1]["finish_reason"] == "length"
    assert rec.state is TaskState.done and rec.first_token_at is not None


async def test_a_short_stream_ends_with_stop() -> None:
    rec = record(max_tokens=10)
    await relay(stream_of(["a"]), rec, FAST, engine="mock", replica_id="p/r0")
    assert events(rec)[-1][1]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("batches", "timeouts", "tokens"),
    [
        pytest.param([["a"]], RelayTimeouts(first_token_s=0.05, token_s=5.0), 0, id="first-token"),
        pytest.param([["a"], ["b"]], RelayTimeouts(first_token_s=5.0, token_s=0.05), 1, id="between-tokens"),
    ],
)
async def test_silence_is_a_retriable_decode_timeout(
    batches: list[list[str]], timeouts: RelayTimeouts, tokens: int
) -> None:
    rec = record()

    async def slow() -> AsyncGenerator[list[str], None]:
        for n, batch in enumerate(batches):
            if n == tokens:
                await asyncio.sleep(1.0)
            yield batch

    with pytest.raises(EngineError) as info:
        await relay(slow(), rec, timeouts, engine="mock", replica_id="p/r0")
    assert info.value.code is ErrorCode.DECODE_TIMEOUT and info.value.retriable
    assert "p/r0" in info.value.message
    assert rec.tokens_out == tokens and not rec.terminal  # the caller ends it with the error


async def test_steady_batches_outlast_the_silence_limit() -> None:
    # The silence timer is armed once per limit and re-armed from the last batch: a stream that
    # runs twice as long as token_s, with short gaps, must not time out at the first deadline.
    rec = record(max_tokens=20)
    timeouts = RelayTimeouts(first_token_s=0.5, token_s=0.5)
    stream = stream_of(*[[f"t{i}"] for i in range(20)], pause_s=0.05)
    await relay(stream, rec, timeouts, engine="mock", replica_id="p/r0")
    assert rec.tokens_out == 20 and rec.state is TaskState.done


async def test_on_batch_may_stop_the_task() -> None:
    rec = record(max_tokens=10)
    seen: list[int] = []

    def after(now: float) -> None:
        seen.append(rec.tokens_out)
        if rec.tokens_out >= 2:
            raise OrchError(ErrorCode.BUDGET_EXCEEDED, "spent")

    with pytest.raises(OrchError):
        await relay(stream_of(["a"], ["b"], ["c"]), rec, FAST, engine="mock", replica_id="p/r0", on_batch=after)
    assert seen == [1, 2]


async def test_a_task_ended_meanwhile_gets_nothing_more() -> None:
    rec = record(max_tokens=10)
    rec.finish_error(OrchError(ErrorCode.CANCELLED, "cancelled").envelope(), TaskState.cancelled)
    await relay(stream_of(["a"], ["b"]), rec, FAST, engine="mock", replica_id="p/r0")
    assert [name for name, _ in events(rec)] == ["error"]
    assert rec.state is TaskState.cancelled
