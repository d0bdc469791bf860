"""The Pact matching of ``llama-orch contract verify`` (llama_orch.cli._pact), rule by rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llama_orch.cli._pact import PactFileError, match_response


def rules(**body: list[dict[str, Any]]) -> dict[str, Any]:
    return {"body": {path: {"combine": "AND", "matchers": m} for path, m in body.items()}}


def check(expected: dict[str, Any], body: Any, status: int = 200, headers: dict[str, str] | None = None) -> list[str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return match_response({"status": 200, **expected}, status, headers or {"content-type": "application/json"}, raw)


def test_status_must_be_equal() -> None:
    assert check({}, {}, status=201) == ["status: expected 200, got 201"]


def test_values_are_equal_without_rules_and_extra_keys_are_fine() -> None:
    assert check({"body": {"a": 1, "b": {"c": "x"}}}, {"a": 1, "b": {"c": "x", "d": 2}, "e": 3}) == []
    assert check({"body": {"a": 1}}, {"a": 2}) == ["$.a: expected 1, got 2"]
    assert check({"body": {"a": 1}}, {}) == ["$.a: missing (expected 1)"]
    assert check({"body": {"a": True}}, {"a": 1}) == ["$.a: expected true, got 1"]
    assert check({"body": {"a": [1, 2]}}, {"a": [1]}) == ["$.a: expected 2 items, got 1"]


def test_a_type_rule_covers_everything_below_it() -> None:
    expected = {
        "body": {"pools": [{"id": "default", "slots": 2}]},
        "matchingRules": rules(**{"$.pools": [{"match": "type", "min": 1}]}),
    }
    assert check(expected, {"pools": [{"id": "gpu", "slots": 8}, {"id": "cpu", "slots": 1, "more": True}]}) == []
    assert check(expected, {"pools": []}) == ["$.pools: expected at least 1 items, got 0"]
    assert check(expected, {"pools": [{"id": 3, "slots": 2}]}) == [
        '$.pools[0].id: expected a string (like "default"), got 3'
    ]
    assert check(expected, {"pools": [{"slots": 2}]}) == ['$.pools[0].id: missing (expected "default")']


def test_the_most_specific_rule_wins() -> None:
    expected = {
        "body": {"sets": [{"state": "ready", "load": 0.0}]},
        "matchingRules": rules(
            **{
                "$.sets": [{"match": "type", "min": 1}],
                "$.sets[*].state": [{"match": "regex", "regex": "^(ready|draining)$"}],
                "$.sets[*].load": [{"match": "number"}],
            }
        ),
    }
    assert check(expected, {"sets": [{"state": "draining", "load": 3}]}) == []
    assert check(expected, {"sets": [{"state": "gone", "load": "x"}]}) == [
        '$.sets[0].state: expected a value matching /^(ready|draining)$/, got "gone"',
        '$.sets[0].load: expected a number, got "x"',
    ]


@pytest.mark.parametrize(
    ("matcher", "good", "bad", "said"),
    [
        ({"match": "integer"}, 3, 3.5, "expected an integer, got 3.5"),
        ({"match": "integer"}, 0, True, "expected an integer, got true"),
        ({"match": "number"}, 3.5, "3", 'expected a number, got "3"'),
        ({"match": "boolean"}, False, 0, "expected a boolean, got 0"),
        ({"match": "null"}, None, 0, "expected null, got 0"),
        ({"match": "include", "value": "ok"}, "it is ok", "nope", "expected a value including 'ok'"),
        ({"match": "regex", "regex": "^t-\\d+$"}, "t-12", "t-x", "expected a value matching /^t-\\d+$/"),
        ({"match": "type"}, "other", 1, 'expected a string (like "v"), got 1'),
    ],
)
def test_each_matcher(matcher: dict[str, Any], good: Any, bad: Any, said: str) -> None:
    expected = {"body": {"v": "v"}, "matchingRules": rules(**{"$.v": [matcher]})}
    assert check(expected, {"v": good}) == []
    [problem] = check(expected, {"v": bad})
    assert problem.startswith(f"$.v: {said}"), problem


def test_text_bodies_with_a_rust_regex() -> None:
    expected = {
        "headers": {"Content-Type": "text/event-stream"},
        "body": "event: end\n\n",
        "matchingRules": rules(**{"$": [{"match": "regex", "regex": "\\A(?:event: \\w+\\n\\n)+\\z"}]}),
    }
    headers = {"content-type": "text/event-stream; charset=utf-8"}
    assert check(expected, b"event: token\n\nevent: end\n\n", headers=headers) == []
    [problem] = check(expected, b"event: token\n\nevent: end\n\ntrailing", headers=headers)
    assert problem.startswith("$: expected a value matching"), problem


def test_headers() -> None:
    expected = {
        "headers": {"Content-Type": "application/json", "Retry-After": "2", "X-Correlation-Id": "c-1"},
        "matchingRules": {"header": {"X-Correlation-Id": {"matchers": [{"match": "regex", "regex": "^[a-z0-9-]+$"}]}}},
    }
    good = {"content-type": "application/json; charset=utf-8", "retry-after": "2", "x-correlation-id": "abc-9"}
    assert check(expected, {}, headers=good) == []
    bad = {"content-type": "text/plain", "x-correlation-id": "NOPE!"}
    assert check(expected, {}, headers=bad) == [
        "header Content-Type: expected 'application/json', got 'text/plain'",
        "header Retry-After: missing (expected '2')",
        'header X-Correlation-Id: expected a value matching /^[a-z0-9-]+$/, got "NOPE!"',
    ]


def test_a_body_that_is_not_json() -> None:
    assert check({"body": {"a": 1}}, b"<html>") == ["body: expected JSON, got b'<html>'"]


def test_no_expected_body_means_any() -> None:
    assert check({}, b"whatever") == []


def test_an_unknown_matcher_or_bad_regex_is_the_pacts_fault() -> None:
    with pytest.raises(PactFileError, match="'semver' is not supported"):
        check({"body": {"v": "1.0.0"}, "matchingRules": rules(**{"$.v": [{"match": "semver"}]})}, {"v": "1.0.0"})
    with pytest.raises(PactFileError, match="is not valid"):
        check({"body": {"v": "x"}, "matchingRules": rules(**{"$.v": [{"match": "regex", "regex": "("}]})}, {"v": "x"})
