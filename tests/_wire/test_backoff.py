"""The one wait-advice reader (SDK and engine adapters): which header wins, which values count."""

from __future__ import annotations

import email.utils

import httpx
import pytest
from multidict import CIMultiDict

from llama_orch._wire import retry_after_ms

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, None, id="none"),
        # orchestratord's own header, in milliseconds, wins over Retry-After (which it also sends)
        pytest.param({"X-Backoff-Ms": "1250", "Retry-After": "2"}, 1250, id="x-backoff-ms-first"),
        # OpenAI's header, in milliseconds, wins over Retry-After
        pytest.param({"retry-after-ms": "120", "Retry-After": "9"}, 120, id="retry-after-ms-first"),
        pytest.param({"X-Backoff-Ms": "5", "retry-after-ms": "7"}, 5, id="ours-before-openai"),
        pytest.param({"Retry-After": "7"}, 7000, id="seconds"),
        pytest.param({"Retry-After": " 7 "}, 7000, id="spaces"),
        pytest.param({"Retry-After": "0"}, 0, id="zero"),
        pytest.param({"Retry-After": "0.25"}, 250, id="fraction"),
        pytest.param({"retry-after-ms": "12.6"}, 13, id="ms-rounded"),
        # what is no advice falls through to the next header, and to none at all
        pytest.param({"X-Backoff-Ms": "soon", "Retry-After": "2"}, 2000, id="bad-ms"),
        pytest.param({"X-Backoff-Ms": "", "Retry-After": "2"}, 2000, id="empty-ms"),
        pytest.param({"X-Backoff-Ms": "-5", "Retry-After": "2"}, 2000, id="negative-ms"),
        pytest.param({"Retry-After": "-3"}, None, id="negative"),
        pytest.param({"Retry-After": "nan"}, None, id="nan"),
        pytest.param({"Retry-After": "inf"}, None, id="inf"),
        pytest.param({"Retry-After": "later"}, None, id="garbage"),
        pytest.param({"Retry-After": ""}, None, id="empty"),
        # dates are measured from now; one in the past means now
        pytest.param({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30_000, id="future-date"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0, id="past-date"),
        pytest.param({"Retry-After": email.utils.formatdate(NOW + 5, localtime=True)}, 5000, id="date-local-zone"),
        pytest.param({"Retry-After": "Tue, 14 Nov 2023 22:13:25 -0000"}, 5000, id="date-unknown-zone"),
    ],
)
def test_advice(headers: dict[str, str], expected: int | None) -> None:
    assert retry_after_ms(headers, now=NOW) == expected


@pytest.mark.parametrize(
    "mapping",
    [
        pytest.param(dict, id="dict"),
        pytest.param(CIMultiDict, id="aiohttp"),
        pytest.param(httpx.Headers, id="httpx"),
    ],
)
def test_header_names_match_in_any_case_in_any_mapping(mapping: type) -> None:
    assert retry_after_ms(mapping({"x-backoff-ms": "3"})) == 3
    assert retry_after_ms(mapping({"RETRY-AFTER-MS": "4"})) == 4
    assert retry_after_ms(mapping({"retry-after": "5"})) == 5000


def test_default_when_nothing_is_advised() -> None:
    assert retry_after_ms({}, 1000) == 1000
    assert retry_after_ms({"Retry-After": "whenever"}, 1000) == 1000
    assert retry_after_ms({"Retry-After": "0"}, 1000) == 0  # "now" is advice, not the lack of it
