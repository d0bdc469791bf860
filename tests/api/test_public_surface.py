"""The public surface of ``llama_orch_api``: exported names, request strictness, the error taxonomy."""

from __future__ import annotations

import re

import pydantic
import pytest

import llama_orch_api
from llama_orch_api import (
    ERROR_STATUS,
    SSE_EVENTS,
    EndEvent,
    ErrorCode,
    ErrorEnvelope,
    ErrorEvent,
    KvHint,
    MetricsEvent,
    StartedEvent,
    TaskRequest,
    TokenEvent,
)

EXPECTED_PUBLIC = {
    "API_VERSION",
    "ERROR_STATUS",
    "SSE_EVENTS",
    "AdmissionResponse",
    "Artifact",
    "ArtifactCreate",
    "ArtifactKind",
    "ArtifactLineage",
    "ArtifactList",
    "ArtifactRef",
    "BudgetInfo",
    "BudgetSpec",
    "ChatTurn",
    "DrainRequest",
    "FeatureFlags",
    "FetchHop",
    "FetchRequest",
    "FetchResponse",
    "GpuReading",
    "HeartbeatAck",
    "RegisteredReplica",
    "RegistrationAck",
    "RemoteReplica",
    "ReplicaHeartbeat",
    "ReplicaRegistration",
    "PoolHealth",
    "PoolOperation",
    "RateLimits",
    "ReloadRequest",
    "ReplicaSet",
    "ReplicaSetList",
    "ReplicaStatus",
    "SamplerProfile",
    "SloSnapshot",
    "CatalogFile",
    "CatalogFileSpec",
    "CatalogModel",
    "CatalogModelCreate",
    "CatalogModelList",
    "Capabilities",
    "Determinism",
    "EndEvent",
    "ErrorCode",
    "ErrorEnvelope",
    "ErrorEvent",
    "KvHint",
    "MetricsEvent",
    "ModelSignature",
    "ModelSignatureSpec",
    "ModelState",
    "ModelStateRequest",
    "PoolCapability",
    "Priority",
    "SessionInfo",
    "StartedEvent",
    "TaskRequest",
    "TokenEvent",
    "TrustMode",
    "TrustPolicy",
    "TrustPolicySpec",
    "VerificationStatus",
    "VerifyResult",
    "Workload",
}


def test_all_is_exactly_the_public_list() -> None:
    exported = llama_orch_api.__all__
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    assert set(exported) == EXPECTED_PUBLIC


@pytest.mark.parametrize("name", sorted(EXPECTED_PUBLIC))
def test_every_public_name_resolves(name: str) -> None:
    assert hasattr(llama_orch_api, name), f"llama_orch_api.{name} is exported but not defined"
    assert getattr(llama_orch_api, name) is not None


def test_api_version_is_semver() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", llama_orch_api.API_VERSION)


def test_sse_events_map_every_event_name_to_its_payload_model() -> None:
    expected = {
        "started": StartedEvent,
        "token": TokenEvent,
        "metrics": MetricsEvent,
        "end": EndEvent,
        "error": ErrorEnvelope,
    }
    assert expected == SSE_EVENTS
    assert ErrorEvent is ErrorEnvelope


# -- TaskRequest ------------------------------------------------------------------------------


def _errors(exc: pytest.ExceptionInfo[pydantic.ValidationError]) -> list[tuple[str, str]]:
    return [(".".join(map(str, e["loc"])), e["type"]) for e in exc.value.errors()]


@pytest.mark.parametrize("field", ["prmpt", "temperature", "max_token"])
def test_task_request_rejects_unknown_fields(field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TaskRequest.model_validate({"prompt": "hi", field: 1})
    assert (field, "extra_forbidden") in _errors(info)


def test_task_request_rejects_unknown_fields_in_kv_hint() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TaskRequest.model_validate({"prompt": "hi", "kv_hint": {"mode": "reuse", "warm": True}})
    assert ("kv_hint.warm", "extra_forbidden") in _errors(info)


def test_task_request_rejects_unknown_fields_in_json() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TaskRequest.model_validate_json(b'{"prompt": "hi", "sed": 3}')
    assert ("sed", "extra_forbidden") in _errors(info)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="neither"),
        pytest.param({"max_tokens": 5}, id="neither-with-other-fields"),
        pytest.param({"prompt": "hi", "inputs": ["hi"]}, id="both"),
        pytest.param({"prompt": None, "inputs": None}, id="both-null"),
    ],
)
def test_task_request_requires_exactly_one_of_prompt_or_inputs(body: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError, match="exactly one of 'prompt' or 'inputs'"):
        TaskRequest.model_validate(body)


def test_task_request_accepts_prompt_or_inputs_alone() -> None:
    by_prompt = TaskRequest.model_validate({"prompt": "hello"})
    assert by_prompt.text() == "hello"
    by_inputs = TaskRequest.model_validate({"inputs": ["a", "b"]})
    assert by_inputs.text() == "a\nb"
    assert TaskRequest.model_validate({"prompt": ""}).text() == ""


def test_task_request_rejects_empty_inputs_list() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TaskRequest.model_validate({"inputs": []})
    assert ("inputs", "too_short") in _errors(info)


def test_task_request_defaults() -> None:
    request = TaskRequest.model_validate({"prompt": "x"})
    assert request.workload == "completion"
    assert request.priority == "interactive"
    assert request.determinism == "best_effort"
    assert request.max_tokens == 128
    assert request.task_id is None and request.seed is None and request.kv_hint is None
    assert KvHint().mode == "reuse"


# -- the error taxonomy -------------------------------------------------------------------------


def test_error_status_covers_every_error_code() -> None:
    assert set(ERROR_STATUS) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.value)
def test_every_error_code_maps_to_a_4xx_or_5xx(code: ErrorCode) -> None:
    status = ERROR_STATUS[code]
    assert isinstance(status, int)
    assert 400 <= status <= 599


def test_error_statuses_of_the_documented_codes() -> None:
    assert ERROR_STATUS[ErrorCode.INVALID_PARAMS] == 400
    assert ERROR_STATUS[ErrorCode.NOT_FOUND] == 404
    assert ERROR_STATUS[ErrorCode.TASK_EXISTS] == 409
    assert ERROR_STATUS[ErrorCode.ADMISSION_REJECT] == 429
    assert ERROR_STATUS[ErrorCode.INTERNAL] == 500


def test_error_envelope_ignores_unknown_fields_but_needs_code_and_message() -> None:
    envelope = ErrorEnvelope.model_validate({"code": "INTERNAL", "message": "x", "added_later": 1})
    assert envelope.code is ErrorCode.INTERNAL and envelope.retriable is False
    with pytest.raises(pydantic.ValidationError):
        ErrorEnvelope.model_validate({"message": "x"})
    with pytest.raises(pydantic.ValidationError):
        ErrorEnvelope.model_validate({"code": "NO_SUCH_CODE", "message": "x"})
