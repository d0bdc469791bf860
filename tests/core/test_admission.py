"""Admission guardrails: candidate_pools and estimate_prompt_tokens."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.core import PoolLimits, candidate_pools, estimate_prompt_tokens
from llama_orch.errors import AdmissionError, QueueFullError
from llama_orch_api import ERROR_STATUS, Determinism, ErrorCode, TaskRequest, Workload

BEST = frozenset({Determinism.best_effort})
BOTH = frozenset({Determinism.strict, Determinism.best_effort})

LLAMA = PoolLimits(
    pool_id="llama",
    engine="llamacpp",
    model_ref="m-llama",
    ctx_max=4096,
    max_tokens=2048,
    workloads=frozenset({Workload.completion, Workload.chat}),
    determinism=BEST,
)
MOCK = PoolLimits(
    pool_id="mock",
    engine="mock",
    model_ref="m-mock",
    ctx_max=8192,
    max_tokens=512,
    workloads=frozenset({Workload.completion}),
    determinism=BOTH,
)
POOLS = [LLAMA, MOCK]


def request(**fields: Any) -> TaskRequest:
    fields.setdefault("prompt", "hello")
    fields.setdefault("max_tokens", 16)
    return TaskRequest(**fields)


@pytest.mark.parametrize(
    ("fields", "code", "details"),
    [
        pytest.param({"pool": "nope"}, ErrorCode.UNKNOWN_POOL, {"known_pools": ["llama", "mock"]}, id="pool"),
        pytest.param(
            {"engine": "vllm"}, ErrorCode.UNKNOWN_ENGINE, {"known_engines": ["llamacpp", "mock"]}, id="engine"
        ),
        pytest.param(
            {"pool": "llama", "engine": "mock"},
            ErrorCode.UNKNOWN_ENGINE,
            {"known_engines": ["llamacpp"]},
            id="engine-not-on-pinned-pool",
        ),
        pytest.param(
            {"model_ref": "m-other"}, ErrorCode.UNKNOWN_MODEL, {"known_models": ["m-llama", "m-mock"]}, id="model"
        ),
        pytest.param(
            {"engine": "llamacpp", "model_ref": "m-mock"},
            ErrorCode.UNKNOWN_MODEL,
            {"known_models": ["m-llama"]},
            id="model-not-on-engine",
        ),
        pytest.param({"workload": "embedding"}, ErrorCode.WORKLOAD_UNSUPPORTED, None, id="workload"),
        pytest.param(
            {"engine": "mock", "workload": "chat"}, ErrorCode.WORKLOAD_UNSUPPORTED, None, id="workload-engine"
        ),
        pytest.param(
            {"engine": "llamacpp", "determinism": "strict"},
            ErrorCode.DETERMINISM_UNSUPPORTED,
            {"pools": ["llama"]},
            id="determinism",
        ),
        pytest.param(
            {"workload": "chat", "determinism": "strict"},
            ErrorCode.DETERMINISM_UNSUPPORTED,
            {"pools": ["llama"]},
            id="determinism-after-workload",
        ),
        pytest.param({"ctx": 8193}, ErrorCode.CTX_EXCEEDED, {"ctx_max": 8192}, id="ctx"),
        pytest.param({"pool": "llama", "ctx": 4097}, ErrorCode.CTX_EXCEEDED, {"ctx_max": 4096}, id="ctx-pinned"),
        pytest.param({"max_tokens": 2049}, ErrorCode.MAX_TOKENS_EXCEEDED, {"max_tokens_limit": 2048}, id="max-tokens"),
        pytest.param(
            {"engine": "mock", "max_tokens": 513},
            ErrorCode.MAX_TOKENS_EXCEEDED,
            {"max_tokens_limit": 512},
            id="max-tokens-engine",
        ),
        pytest.param(
            # 4000 ASCII bytes ~ 1000 tokens; 1000 + 100 > ctx 1050
            {"prompt": "x" * 4000, "max_tokens": 100, "ctx": 1050},
            ErrorCode.CTX_EXCEEDED,
            {"prompt_tokens_estimate": 1000, "ctx": 1050},
            id="prompt-plus-max-tokens",
        ),
        pytest.param(
            # the llama pool has the tokens but not the context; the mock pool the reverse
            {"ctx": 6000, "max_tokens": 1000},
            ErrorCode.CTX_EXCEEDED,
            {"pools": ["llama", "mock"]},
            id="no-single-pool-fits",
        ),
        pytest.param(
            # ordering: the pool pin is checked before the limits
            {"pool": "nope", "max_tokens": 10**6, "ctx": 10**6},
            ErrorCode.UNKNOWN_POOL,
            None,
            id="first-failure-wins",
        ),
    ],
)
def test_guardrail_raises_admission_error(
    fields: dict[str, Any], code: ErrorCode, details: dict[str, object] | None
) -> None:
    with pytest.raises(AdmissionError) as info:
        candidate_pools(request(**fields), POOLS)
    err = info.value
    assert type(err) is AdmissionError
    assert not isinstance(err, QueueFullError)
    assert err.code is code
    assert err.status == ERROR_STATUS[code] == 400
    assert err.retriable is False
    assert err.message
    if details is not None:
        assert err.details is not None
        assert {k: err.details.get(k) for k in details} == details
    envelope = err.envelope("corr-1")
    assert (envelope.code, envelope.correlation_id) == (code, "corr-1")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, [LLAMA, MOCK], id="anything"),
        pytest.param({"pool": "mock"}, [MOCK], id="pinned"),
        pytest.param({"engine": "llamacpp"}, [LLAMA], id="engine"),
        pytest.param({"model_ref": "m-mock"}, [MOCK], id="model"),
        pytest.param({"workload": "chat"}, [LLAMA], id="workload"),
        pytest.param({"determinism": "strict"}, [MOCK], id="strict"),
        pytest.param({"max_tokens": 1000}, [LLAMA], id="only-llama-has-the-tokens"),
        pytest.param({"ctx": 6000}, [MOCK], id="only-mock-has-the-context"),
        pytest.param({"prompt": None, "inputs": ["a" * 6000] * 3}, [MOCK], id="inputs-count-as-prompt"),
    ],
)
def test_candidate_pools_filters(fields: dict[str, Any], expected: list[PoolLimits]) -> None:
    assert candidate_pools(request(**fields), POOLS) == expected


def test_prompt_plus_max_tokens_boundary() -> None:
    pool = PoolLimits("p", "mock", "m", ctx_max=100, max_tokens=100, workloads=frozenset(Workload), determinism=BOTH)
    prompt = "x" * 40  # 10 tokens
    assert candidate_pools(request(prompt=prompt, max_tokens=90), [pool]) == [pool]
    with pytest.raises(AdmissionError) as info:
        candidate_pools(request(prompt=prompt, max_tokens=91), [pool])
    assert info.value.code is ErrorCode.CTX_EXCEEDED
    # A smaller ctx asked for narrows the window.
    with pytest.raises(AdmissionError) as info:
        candidate_pools(request(prompt=prompt, max_tokens=50, ctx=59), [pool])
    assert info.value.code is ErrorCode.CTX_EXCEEDED
    assert candidate_pools(request(prompt=prompt, max_tokens=50, ctx=60), [pool]) == [pool]


def test_no_pools_at_all() -> None:
    with pytest.raises(AdmissionError) as info:
        candidate_pools(request(), [])
    assert info.value.code is ErrorCode.WORKLOAD_UNSUPPORTED


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 1),
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("x" * 4000, 1000),
        ("é" * 4, 2),  # 2 bytes each
        ("🙂", 1),  # 4 bytes
        ("\ud800", 1),  # a lone surrogate is counted, not an error
    ],
)
def test_estimate_prompt_tokens(text: str, tokens: int) -> None:
    assert estimate_prompt_tokens(text) == tokens


@settings(max_examples=100, deadline=None)
@given(a=st.text(), b=st.text())
def test_estimate_prompt_tokens_is_monotone_and_subadditive(a: str, b: str) -> None:
    whole = estimate_prompt_tokens(a + b)
    assert whole >= max(estimate_prompt_tokens(a), estimate_prompt_tokens(b))
    assert whole <= estimate_prompt_tokens(a) + estimate_prompt_tokens(b)
