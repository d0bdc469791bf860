"""The pieces the HTTP adapters share: error messages (SSE and Retry-After: tests/_wire)."""

from __future__ import annotations

import pytest

from llama_orch.engines._http import error_message, message_of


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
