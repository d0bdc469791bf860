"""The exception tree mirrors the error taxonomy, and answers become the right errors."""

from __future__ import annotations

import httpx
import pytest

from llama_orch.client import (
    ERROR_CLASSES,
    APIError,
    BackpressureError,
    Client,
    InvalidRequestError,
    NotFoundError,
    ProtocolError,
    RefusedError,
    ServerError,
    StateConflictError,
    UnavailableError,
)
from llama_orch.client import _errors as errors
from llama_orch.client._errors import error_class
from llama_orch_api import ERROR_STATUS, ErrorCode

GROUP_OF_STATUS = {
    400: InvalidRequestError,
    401: RefusedError,
    402: RefusedError,
    403: RefusedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: StateConflictError,
    410: RefusedError,
    413: InvalidRequestError,
    422: ServerError,
    429: BackpressureError,
    500: ServerError,
    502: ServerError,
    503: UnavailableError,
}
# Codes that only arrive as a stream's error event, whatever ERROR_STATUS says.
STREAM_ONLY = {ErrorCode.WORKER_RESET: ServerError, ErrorCode.DECODE_TIMEOUT: ServerError}


def test_one_class_per_error_code() -> None:
    assert set(ERROR_CLASSES) == set(ErrorCode)
    assert len(set(ERROR_CLASSES.values())) == len(ErrorCode)
    for code, cls in ERROR_CLASSES.items():
        assert cls.code_value is code
        assert cls.__name__ in errors.__all__


@pytest.mark.parametrize("code", list(ErrorCode))
def test_each_code_sits_under_the_group_of_its_status(code: ErrorCode) -> None:
    group = STREAM_ONLY.get(code) or GROUP_OF_STATUS[ERROR_STATUS[code]]
    assert issubclass(ERROR_CLASSES[code], group)
    assert issubclass(ERROR_CLASSES[code], APIError)


def test_the_tree_in_the_docstring_names_every_class() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if name[0].isupper() and name != "ERROR_CLASSES":
            assert name in doc, f"{name} missing from the drawn tree"


def test_an_unknown_code_from_a_newer_server_gets_its_status_group() -> None:
    assert error_class("QUOTA_GONE", 429) is BackpressureError
    assert error_class("QUOTA_GONE", 599) is ServerError
    assert error_class("QUOTA_GONE", None) is APIError


def _client(handler: httpx.MockTransport) -> Client:
    return Client("http://orch.test", transport=handler, check_api_version=False)


def test_unknown_code_keeps_its_envelope() -> None:
    body = {"code": "QUOTA_GONE", "message": "new in 0.9", "retriable": False, "policy_label": "q"}
    transport = httpx.MockTransport(lambda request: httpx.Response(429, json=body, headers={"X-Correlation-Id": "c1"}))
    with _client(transport) as client, pytest.raises(BackpressureError) as caught:
        client.replicasets()
    assert caught.value.code == "QUOTA_GONE"
    assert caught.value.policy_label == "q"
    assert caught.value.correlation_id == "c1"


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [(502, b"<html>Bad Gateway</html>", "text/html"), (404, b'{"detail": "nope"}', "application/json")],
)
def test_an_answer_that_is_not_an_envelope_is_a_protocol_error(status: int, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type}
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers))
    with _client(transport) as client, pytest.raises(ProtocolError, match="orchestratord"):
        client.replicasets()


def test_a_success_that_is_not_the_model_is_a_protocol_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"pools": "many"}))
    with _client(transport) as client, pytest.raises(ProtocolError, match="ReplicaSetList"):
        client.replicasets()
