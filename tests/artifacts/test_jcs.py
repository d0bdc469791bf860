"""The fast RFC 8785 encoder (artifacts/_jcs.py) gives the ``rfc8785`` package's bytes and errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.artifacts import _jcs

# Every code point, lone surrogates included (the package refuses them; so must we).
_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) - 3, max_value=2**53 + 3)
    | st.sampled_from([2**53 - 1, -(2**53) + 1, 2**53, -(2**53), 2**64, 0])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 100.0, 123e-20])
    | _TEXT
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5) | st.tuples(inner, inner),
    max_leaves=30,
)


def outcome(encode: Any, value: object) -> tuple[str, object]:
    try:
        return "ok", encode(value)
    except Exception as exc:  # which exception is what is compared
        return "error", type(exc)


@settings(max_examples=3000, deadline=None)
@given(_VALUES)
def test_same_bytes_or_the_same_refusal_as_the_package(value: object) -> None:
    assert outcome(_jcs.dumps, value) == outcome(rfc8785.dumps, value)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, 'x\u2028\x7f\x00\x1f"\\\n'], "\U0001f600": 2, "\ue000": 3},
        "line\r\nbreak\ttab\bback\fform",
        {"kind": "trace", "content": {"transcript": 'id: 1\nevent: token\ndata: {"t":"hi","i":0}\n\n'}},
        [1.5, -0.0, 1e21, 1e-7, 2**53 - 1],
        (1, "two"),
    ],
)
def test_examples(value: object) -> None:
    assert _jcs.dumps(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**53, rfc8785.IntegerDomainError),
        (math.nan, rfc8785.FloatDomainError),
        (math.inf, rfc8785.FloatDomainError),
        ("\ud800", rfc8785.CanonicalizationError),
        ({1: "not a string key"}, rfc8785.CanonicalizationError),
        ({"set": {1, 2}}, rfc8785.CanonicalizationError),
        (b"bytes", rfc8785.CanonicalizationError),
    ],
)
def test_refusals(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        _jcs.dumps(value)
    with pytest.raises(error):
        rfc8785.dumps(value)
