"""The SDK's public surface is a promise: this list changes only on purpose."""

from __future__ import annotations

import inspect

import llama_orch.client as sdk

PUBLIC = {
    # clients and task handles
    "Client", "AsyncClient", "Task", "AsyncTask", "TaskEvent", "TaskResult",
    "DEFAULT", "DefaultType", "DEFAULT_BASE_URL", "ResponseInfo", "last_response",
    # behaviour
    "RetryPolicy", "AdaptiveLimiter", "LimiterStats", "SUPPORTED_API_VERSIONS", "VersionRange",
    "SSEParser", "ServerSentEvent",
    # errors
    "ERROR_CLASSES", "LlamaOrchError", "APIError",
    "InvalidRequestError", "InvalidParamsError", "UnknownEngineError", "UnknownModelError", "UnknownPoolError",
    "CtxExceededError", "MaxTokensExceededError", "DeterminismUnsupportedError", "WorkloadUnsupportedError",
    "MethodNotAllowedError", "PayloadTooLargeError",
    "NotFoundError",
    "RefusedError", "BudgetExceededError", "UntrustedArtifactError", "ModelDeprecatedError",
    "UnauthenticatedError", "ForbiddenError", "PolicyDeniedError",
    "StateConflictError", "TaskExistsError", "ConflictError", "TaskCancelledError",
    "BackpressureError", "AdmissionRejectError", "QueueFullDropLruError", "RateLimitedError",
    "UnavailableError", "DeadlineUnmetError", "PoolUnreadyError", "PoolUnavailableError", "PoolDrainingError",
    "OrchestratorRestartedError",
    "ServerError", "InternalServerError", "ReloadFailedError", "FetchFailedError",
    "EngineFailureError", "EngineError", "WorkerResetError", "DecodeTimeoutError",
    "TransportError", "ServerUnreachableError", "RequestTimeoutError", "StreamInterruptedError",
    "ProtocolError", "IncompatibleServerError",
}  # fmt: skip


def test_all_is_exactly_the_promised_surface() -> None:
    assert set(sdk.__all__) == PUBLIC
    assert len(sdk.__all__) == len(set(sdk.__all__))
    for name in sdk.__all__:
        assert hasattr(sdk, name), name


def test_public_classes_and_functions_are_documented() -> None:
    for name in sdk.__all__:
        obj = getattr(sdk, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_twins_offer_the_same_operations() -> None:
    def operations(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}

    sync, asynchronous = operations(sdk.Client), operations(sdk.AsyncClient)
    assert sync - {"stream", "close"} == asynchronous - {"astream", "aclose"}
    for name in sync & asynchronous:
        assert inspect.iscoroutinefunction(getattr(sdk.AsyncClient, name)), name
        assert inspect.signature(getattr(sdk.Client, name)).parameters.keys() == (
            inspect.signature(getattr(sdk.AsyncClient, name)).parameters.keys()
        ), name


def test_the_sdk_reuses_the_wire_models() -> None:
    import llama_orch_api

    hints = inspect.get_annotations(sdk.Client.capabilities, eval_str=True)
    assert hints["return"] is llama_orch_api.Capabilities
    assert inspect.get_annotations(sdk.AsyncClient.get_artifact, eval_str=True)["return"] is llama_orch_api.Artifact
