"""The SDK's stream parsing agrees with the per-event schema of data.yaml (``itemSchema``).

The SDK reads a task's stream with the one SSE parser and decodes each event into the model its
name selects. The contract states the same per event (OpenAPI 3.2 ``itemSchema``: a ``oneOf`` on
the event name, each branch's ``data`` a JSON document with its ``contentSchema``). Here both read
the same frames: every example stream of the YAML, and frames that break the schema.
"""

from __future__ import annotations

import dataclasses

import pytest

from llama_orch._wire import ServerSentEvent, SSEParser
from llama_orch.client import ProtocolError
from llama_orch.client._base import _EVENT_MODELS, _BaseClient
from tests.contract._sse_schema import STREAM, ItemSchema


@pytest.fixture(scope="module")
def item_schema() -> ItemSchema:
    return ItemSchema()


def _frame(event: ServerSentEvent) -> dict[str, str]:
    frame = {"event": event.event, "data": event.data}
    if event.id is not None:
        frame["id"] = event.id
    return frame


def _example_streams(item_schema: ItemSchema) -> dict[str, str]:
    path, method = STREAM
    content = item_schema.doc["paths"][path][method]["responses"]["200"]["content"]["text/event-stream"]
    return {name: example["value"] for name, example in content["examples"].items()}


def test_the_sdk_decodes_each_event_into_the_model_the_schema_names(item_schema: ItemSchema) -> None:
    assert {event: model.__name__ for event, model in _EVENT_MODELS.items()} == item_schema.payload_models()


def test_every_example_stream_is_valid_per_event_and_decoded_by_the_sdk(item_schema: ItemSchema) -> None:
    streams = _example_streams(item_schema)
    assert len(streams) >= 3
    for name, text in streams.items():
        parser = SSEParser()
        events = [*parser.feed(text.encode()), *parser.close()]
        assert events, name
        for event in events:
            assert item_schema.frame_problems(_frame(event)) == [], (name, event)
            decoded = _BaseClient._decode(event)
            assert decoded is not None and decoded.id == int(event.id or "0")
            assert type(decoded.data).__name__ == item_schema.payload_models()[event.event]


BROKEN = {
    "token text not a string": ServerSentEvent("token", '{"t": 1, "i": 0}', "3", None),
    "end without tokens_out": ServerSentEvent("end", '{"decode_time_ms": 1}', "9", None),
    "started missing its replica": ServerSentEvent(
        "started", '{"task_id":"t","pool":"p","queue_position":0,"predicted_start_ms":0,"waited_ms":0}', "2", None
    ),
    "error with an unknown code": ServerSentEvent("error", '{"code":"NOPE","message":"x"}', "4", None),
    "data not JSON": ServerSentEvent("metrics", "queue_depth=1", "1", None),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_frame_the_schema_refuses_is_refused_by_the_sdk(item_schema: ItemSchema, case: str) -> None:
    event = BROKEN[case]
    assert item_schema.frame_problems(_frame(event)), case
    with pytest.raises(ProtocolError):
        _BaseClient._decode(event)


def test_frame_envelope_rules_the_sdk_leaves_to_the_server(item_schema: ItemSchema) -> None:
    good = ServerSentEvent("token", '{"t": "a", "i": 0}', "3", None)
    assert item_schema.frame_problems(_frame(good)) == []
    # The schema also says every event has a positive id and a known name; the SDK skips events
    # of names it does not know (a newer server's) instead of failing.
    assert item_schema.frame_problems(_frame(dataclasses.replace(good, id="0")))
    assert item_schema.frame_problems({k: v for k, v in _frame(good).items() if k != "id"})
    unknown = dataclasses.replace(good, event="progress")
    assert item_schema.frame_problems(_frame(unknown))
    assert _BaseClient._decode(unknown) is None
