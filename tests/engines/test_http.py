"""The pieces the HTTP adapters share: error messages, the events' JSON decoding (SSE and Retry-After: tests/_wire)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.engines._http import error_message, loads, message_of


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


# -- loads: json.loads's objects (or exception), by way of orjson --------------------------------


def strict(value: object) -> object:
    """``value`` with every type spelled out: 1 and 1.0 and True differ, as do -0.0 and 0.0; NaN == NaN."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, dict):
        return ("dict", [(k, strict(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [strict(v) for v in value])
    return (type(value).__name__, value)


def outcome(decode: object, text: str) -> object:
    try:
        return strict(decode(text))  # type: ignore[operator]
    except (ValueError, RecursionError) as exc:
        return (type(exc).__name__, str(exc))


INTS = st.one_of(
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30)]),
)
TEXT = st.text(
    st.one_of(st.characters(codec=None, categories=None), st.sampled_from('"\\/\x00\x1f\u2028\ud800\udc00\U0001f600')),
    max_size=8,
)
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), INTS, st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)
PIECES = st.sampled_from(
    ['{', '}', '[', ']', ',', ':', '"', '"a"', '"\\ud800"', '"\\u00e9"', '\\', 'NaN', 'Infinity', '-', '1', '0',
     '18446744073709551616', '9223372036854775808', '.5', 'e9', 'E-400', '1e400', 'true', 'null', ' ', '\n', '\t',
     '\x0c', '\ufeff', '\ud800', 'é', '\x00']
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=VALUES, ensure_ascii=st.booleans(), spaced=st.booleans())
def test_loads_gives_json_loads_objects(value: object, ensure_ascii: bool, spaced: bool) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii, separators=(", ", ": ") if spaced else (",", ":"))
    assert outcome(loads, text) == outcome(json.loads, text)


@settings(max_examples=400, deadline=None)
@given(text=st.lists(PIECES, max_size=20).map("".join))
def test_loads_accepts_and_refuses_what_json_loads_does(text: str) -> None:
    assert outcome(loads, text) == outcome(json.loads, text)


@pytest.mark.parametrize("depth", [63, 64, 65, 900, 1000, 1024, 1025, 5000])
def test_loads_on_deep_nesting_is_json_loads(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        assert outcome(loads, text) == outcome(json.loads, text)


def test_loads_on_what_orjson_reads_otherwise() -> None:
    big = loads('{"tokens":[18446744073709551616],"n":-9223372036854775809}')
    assert big == {"tokens": [2**64], "n": -(2**63) - 1} and type(big["tokens"][0]) is int
    assert math.isnan(loads('{"x":NaN}')["x"])
    assert loads("[Infinity,-Infinity,1e400]") == [math.inf, -math.inf, math.inf]
    assert loads('"\\ud800"') == "\ud800" and loads('"\ud800"') == "\ud800"
