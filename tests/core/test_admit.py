"""admit: the pure admission decision over pool snapshots (core/_admission.py), and parse_task."""

from __future__ import annotations

from typing import Any

import pytest

from llama_orch.core import (
    PoolLimits,
    PoolSnapshot,
    PoolState,
    QueueLoad,
    ServiceEstimator,
    admit,
    parse_task,
)
from llama_orch.errors import AdmissionError, OrchError
from llama_orch_api import Determinism, ErrorCode, TaskRequest, Workload

NOW = 1000.0
EST = ServiceEstimator(first_token_ms=10.0, ms_per_token=1.0)


def limits(pool_id: str) -> PoolLimits:
    return PoolLimits(
        pool_id,
        "mock",
        "m",
        ctx_max=4096,
        max_tokens=512,
        workloads=frozenset(Workload),
        determinism=frozenset(Determinism),
    )


def load(*, free: int = 1, interactive: tuple[int, ...] = (), batch: tuple[int, ...] = ()) -> QueueLoad:
    return QueueLoad(
        running=(),
        free_slots=free,
        queued_interactive=len(interactive),
        queued_batch=len(batch),
        tokens_interactive=sum(interactive),
        tokens_batch=sum(batch),
        head_interactive=interactive,
        head_batch=batch,
        total_slots=max(1, free),
        capacity=100,
    )


def snap(pool_id: str, state: PoolState = PoolState.ready, **kw: Any) -> PoolSnapshot:
    unready = kw.pop("unready", None)
    return PoolSnapshot(limits(pool_id), state, state.admits, load(**kw), EST, unready)


def request(**fields: Any) -> TaskRequest:
    fields.setdefault("prompt", "hello")
    fields.setdefault("max_tokens", 16)
    return TaskRequest(**fields)


def test_one_idle_pool_starts_at_once() -> None:
    assert admit(request(), [snap("a")], NOW).predicted_start_ms == 0
    assert admit(request(), [snap("a")], NOW).pool_id == "a"


def test_the_pool_predicted_to_start_soonest_wins() -> None:
    # "a" has one slot, busy for nothing but two queued tasks of 100 tokens ahead; "b" is idle.
    busy = snap("a", free=0, interactive=(100, 100))
    decision = admit(request(), [busy, snap("b")], NOW)
    assert (decision.pool_id, decision.predicted_start_ms) == ("b", 0)


def test_batch_waits_behind_interactive_but_not_the_reverse() -> None:
    pool = snap("a", free=0, interactive=(50,), batch=(500,))
    # No ready slot: the one slot is assumed free after a typical task (10 + 128 ms).
    interactive = admit(request(priority="interactive"), [pool], NOW).predicted_start_ms
    batch = admit(request(priority="batch"), [pool], NOW).predicted_start_ms
    assert interactive == 138 + 60  # behind the one interactive task: 10 + 50
    assert batch == 138 + 60 + 510  # behind both


def test_deadline_that_the_prediction_misses_is_refused_with_advice() -> None:
    pool = snap("a", free=0, interactive=(100,))
    with pytest.raises(AdmissionError) as info:
        admit(request(deadline_ms=5), [pool], NOW)
    err = info.value
    assert err.code is ErrorCode.DEADLINE_UNMET and err.status == 429 and err.retriable
    assert err.policy_label == "deadline-unmet"
    assert err.details == {"predicted_start_ms": 248, "pool": "a"}
    assert err.retry_after_ms == 248 - 5


@pytest.mark.parametrize("state", [PoolState.draining, PoolState.drained])
def test_no_admitting_pool_says_which_states(state: PoolState) -> None:
    with pytest.raises(AdmissionError) as info:
        admit(request(), [snap("a", state), snap("b", PoolState.drained)], NOW)
    assert info.value.code is ErrorCode.POOL_DRAINING
    assert info.value.details == {"pools": {"a": state.value, "b": "drained"}}


def test_an_unready_pool_gives_its_reason() -> None:
    why = OrchError(ErrorCode.POOL_UNREADY, "pool 'a' is not ready: no model", retriable=True, retry_after_ms=5000)
    with pytest.raises(AdmissionError) as info:
        admit(request(), [snap("b", PoolState.draining), snap("a", PoolState.unready, unready=why)], NOW)
    err = info.value
    assert (err.code, err.message, err.retry_after_ms) == (ErrorCode.POOL_UNREADY, why.message, 5000)


def test_a_reloading_pool_still_admits() -> None:
    assert admit(request(), [snap("a", PoolState.reloading)], NOW).pool_id == "a"


def test_admit_changes_nothing() -> None:
    pool = snap("a", free=0, interactive=(100,))
    before = (EST.first_token_ms, EST.ms_per_token, EST.fill_ratio, EST.observations)
    admit(request(), [pool], NOW)
    assert pool == snap("a", free=0, interactive=(100,))
    assert (EST.first_token_ms, EST.ms_per_token, EST.fill_ratio, EST.observations) == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param(b"{", "<body>", id="not-json"),
        pytest.param(b"[]", "<body>", id="not-an-object"),
        pytest.param(b'{"prompt": 5, "max_tokens": 3}', "prompt", id="wrong-type"),
        pytest.param(b'{"prompt": "x", "max_tokens": 0}', "max_tokens", id="out-of-range"),
        pytest.param(b'{"prompt": "secret-value", "max_tokens": 1, "nope": 1}', "nope", id="unknown-field"),
    ],
)
def test_parse_task_refuses_bad_bodies_naming_the_field(body: bytes, loc: str) -> None:
    with pytest.raises(AdmissionError) as info:
        parse_task(body)
    err = info.value
    assert err.code is ErrorCode.INVALID_PARAMS and err.status == 400
    assert err.details is not None
    assert any(p["loc"] == loc for p in err.details["errors"])  # type: ignore[union-attr,index]
    assert "secret-value" not in str(err.details) and "secret-value" not in err.message


def test_parse_task_accepts_a_valid_body() -> None:
    assert parse_task(b'{"prompt": "hi", "max_tokens": 3}').max_tokens == 3
