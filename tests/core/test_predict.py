"""predict_start_ms and ServiceEstimator: hand-computed cases, a reference replay, properties."""

from __future__ import annotations

import dataclasses
import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.core import (
    EXACT_PREDICTION_LIMIT,
    QueueLoad,
    RunningTask,
    ServiceEstimator,
    backoff_ms,
    head_needed,
    predict_new,
    predict_start_ms,
    retry_after_ms,
)
from llama_orch.core._predict import slot_init
from llama_orch_api import Priority

ms = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
slots_st = st.lists(ms, min_size=1, max_size=8)
ahead_st = st.lists(ms, max_size=30)


def reference_start(slots: list[float], ahead: list[float], extra: float = 0.0) -> float:
    """Replay FIFO dispatch the slow, obvious way."""
    free = list(slots)
    for service in ahead:
        i = free.index(min(free))
        free[i] += service
    return min(free) + (extra / len(free) if extra > 0 else 0.0)


# --------------------------------------------------------------------------------------------
# predict_start_ms: hand-computed


@pytest.mark.parametrize(
    ("slots", "ahead", "extra", "expected"),
    [
        pytest.param([0.0], [], 0.0, 0.0, id="one-idle-slot"),
        pytest.param([0.0, 0.0, 0.0], [100.0, 200.0], 0.0, 0.0, id="idle-slot-left-after-queue"),
        pytest.param([50.0, 0.0], [], 0.0, 0.0, id="one-idle-one-busy"),
        pytest.param([30.0, 10.0, 20.0], [], 0.0, 10.0, id="all-busy-earliest-wins"),
        pytest.param([30.0, 10.0, 20.0], [5.0], 0.0, 15.0, id="all-busy-one-ahead"),
        # slots free at 10 and 40; 100 takes the 10-slot (->110), 50 the 40-slot (->90),
        # 20 the 90-slot (->110): both slots free at 110.
        pytest.param([10.0, 40.0], [100.0, 50.0, 20.0], 0.0, 110.0, id="queue-longer-than-slots"),
        # one slot: strictly serial.
        pytest.param([25.0], [10.0, 20.0, 30.0], 0.0, 85.0, id="single-slot-serial"),
        # fluid part is spread over the slots: 0 + 100 / 2.
        pytest.param([0.0, 0.0], [], 100.0, 50.0, id="fluid-only"),
        # replay [0, 0] with 30 -> [0, 30]; earliest 0, plus 60 / 2.
        pytest.param([0.0, 0.0], [30.0], 60.0, 30.0, id="exact-then-fluid"),
        # 4 slots busy for 10, 20, 30, 40; two tasks of 100 -> [30, 40, 110, 120]; + 80 / 4.
        pytest.param([10.0, 20.0, 30.0, 40.0], [100.0, 100.0], 80.0, 50.0, id="busy-exact-fluid"),
        pytest.param([7.0, 9.0], [], -5.0, 7.0, id="negative-extra-ignored"),
    ],
)
def test_predict_start_hand_computed(slots: list[float], ahead: list[float], extra: float, expected: float) -> None:
    assert predict_start_ms(slots, ahead, extra_ahead_ms=extra) == pytest.approx(expected)


def test_predict_start_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="no slots"):
        predict_start_ms([], [1.0])


def test_predict_start_does_not_mutate_inputs_and_accepts_iterators() -> None:
    slots = [40.0, 10.0]
    ahead = [5.0, 5.0]
    assert predict_start_ms(iter(slots), iter(ahead)) == 20.0
    assert slots == [40.0, 10.0]
    assert ahead == [5.0, 5.0]


# --------------------------------------------------------------------------------------------
# predict_start_ms: properties


@settings(max_examples=200, deadline=None)
@given(slots=slots_st, ahead=ahead_st, extra=ms)
def test_predict_start_matches_reference_replay(slots: list[float], ahead: list[float], extra: float) -> None:
    assert predict_start_ms(slots, ahead, extra_ahead_ms=extra) == pytest.approx(
        reference_start(slots, ahead, extra), rel=1e-9, abs=1e-6
    )


@settings(max_examples=200, deadline=None)
@given(slots=slots_st, ahead=ahead_st, extra=ms, new=ms, data=st.data())
def test_predict_start_monotone_when_a_task_is_added_ahead(
    slots: list[float], ahead: list[float], extra: float, new: float, data: st.DataObject
) -> None:
    """Inserting one more task anywhere ahead never makes the new task start earlier."""
    index = data.draw(st.integers(0, len(ahead)), label="insert at")
    longer = [*ahead[:index], new, *ahead[index:]]
    before = predict_start_ms(slots, ahead, extra_ahead_ms=extra)
    after = predict_start_ms(slots, longer, extra_ahead_ms=extra)
    assert after >= before


@settings(max_examples=100, deadline=None)
@given(slots=slots_st, ahead=ahead_st, extra=ms, more=ms)
def test_predict_start_monotone_in_fluid_work(
    slots: list[float], ahead: list[float], extra: float, more: float
) -> None:
    assert predict_start_ms(slots, ahead, extra_ahead_ms=extra + more) >= predict_start_ms(
        slots, ahead, extra_ahead_ms=extra
    )


@settings(max_examples=100, deadline=None)
@given(slots=st.lists(st.just(0.0), min_size=1, max_size=8), data=st.data())
def test_predict_start_zero_while_an_idle_slot_remains(slots: list[float], data: st.DataObject) -> None:
    ahead = data.draw(st.lists(ms, max_size=len(slots) - 1))
    assert predict_start_ms(slots, ahead) == 0.0


# --------------------------------------------------------------------------------------------
# ServiceEstimator


def test_service_and_remaining_hand_computed() -> None:
    est = ServiceEstimator(first_token_ms=100.0, ms_per_token=10.0, fill_ratio=0.5)
    assert est.expected_tokens(40) == 20.0
    assert est.expected_tokens(1) == 1.0  # never fewer than one token
    assert est.service_ms(40) == 100.0 + 20 * 10.0
    # not started: the whole service time less what has elapsed
    assert est.remaining_ms(40, tokens_out=0, elapsed_ms=50.0) == 250.0
    assert est.remaining_ms(40, tokens_out=0, elapsed_ms=1000.0) == 0.0
    # decoding: the expected tokens still to come
    assert est.remaining_ms(40, tokens_out=5, elapsed_ms=123.0) == 150.0
    assert est.remaining_ms(40, tokens_out=30, elapsed_ms=0.0) == 0.0


def test_observe_hand_computed() -> None:
    est = ServiceEstimator(first_token_ms=100.0, ms_per_token=10.0)
    # The first three observations weigh 0.5.
    est.observe(first_token_ms=200.0, decode_ms=180.0, tokens_out=10, max_tokens=20)
    assert est.first_token_ms == pytest.approx(150.0)
    assert est.ms_per_token == pytest.approx(15.0)  # 180 / 9 = 20, halfway from 10
    assert est.fill_ratio == pytest.approx(0.75)  # halfway from 1.0 to 0.5
    assert est.observations == 1
    est.observe(first_token_ms=150.0, decode_ms=0.0, tokens_out=1, max_tokens=1)
    assert est.ms_per_token == pytest.approx(15.0)  # one token says nothing about decode speed
    assert est.fill_ratio == pytest.approx(0.875)
    est.observe(first_token_ms=150.0, decode_ms=0.0, tokens_out=50, max_tokens=10)
    assert est.fill_ratio == pytest.approx(0.9375)  # fill is capped at 1
    assert est.ms_per_token == pytest.approx(7.5)
    # From the fourth observation on, the weight is alpha.
    est.observe(first_token_ms=250.0, decode_ms=0.0, tokens_out=1, max_tokens=1)
    assert est.first_token_ms == pytest.approx(150.0 + 0.2 * 100.0)
    assert est.observations == 4


@settings(max_examples=100, deadline=None)
@given(
    start=st.tuples(
        st.floats(0, 5000), st.floats(0.01, 500), st.floats(0.01, 1.0)
    ),  # first_token_ms, ms_per_token, fill
    first=st.floats(0, 5000),
    per_token=st.floats(0, 500),
    max_tokens=st.integers(2, 4096),
    used=st.floats(0.01, 1.0),
    alpha=st.floats(0.05, 0.9),
)
def test_estimator_converges_to_steady_observations(
    start: tuple[float, float, float],
    first: float,
    per_token: float,
    max_tokens: int,
    used: float,
    alpha: float,
) -> None:
    tokens_out = max(2, round(max_tokens * used))
    est = ServiceEstimator(first_token_ms=start[0], ms_per_token=start[1], fill_ratio=start[2], alpha=alpha)
    target = (first, per_token, tokens_out / max_tokens)

    def errors() -> list[float]:
        return [
            abs(est.first_token_ms - target[0]),
            abs(est.ms_per_token - target[1]),
            abs(est.fill_ratio - target[2]),
        ]

    previous = errors()
    for _ in range(600):
        est.observe(first, per_token * (tokens_out - 1), tokens_out, max_tokens)
        now = errors()
        assert all(n <= p + 1e-9 for n, p in zip(now, previous, strict=True)), "each observation moves closer"
        previous = now
    assert est.first_token_ms == pytest.approx(target[0], abs=1e-6)
    assert est.ms_per_token == pytest.approx(target[1], abs=1e-6)
    assert est.fill_ratio == pytest.approx(target[2], abs=1e-9)
    assert est.service_ms(max_tokens) == pytest.approx(first + max(1.0, tokens_out) * per_token, rel=1e-6, abs=1e-6)


# --------------------------------------------------------------------------------------------
# predict_new / retry_after_ms / backoff_ms over a QueueLoad snapshot


def _load(**kw: object) -> QueueLoad:
    base: dict[str, object] = {
        "running": (),
        "free_slots": 0,
        "queued_interactive": 0,
        "queued_batch": 0,
        "tokens_interactive": 0,
        "tokens_batch": 0,
        "head_interactive": (),
        "head_batch": (),
        "total_slots": 1,
        "capacity": 10,
    }
    base.update(kw)
    return QueueLoad(**base)  # type: ignore[arg-type]


EST = ServiceEstimator(first_token_ms=10.0, ms_per_token=1.0)


def test_predict_new_counts_running_tasks_remaining_time() -> None:
    # 100 of 200 tokens done: 100 tokens left at 1 ms each.
    running = (RunningTask(started_at=5.0, max_tokens=200, tokens_out=100),)
    assert predict_new(_load(running=running), Priority.interactive, EST, now=5.5) == 100.0
    # Not started decoding yet: the whole service minus the time elapsed.
    waiting = (RunningTask(started_at=5.0, max_tokens=200, tokens_out=0),)
    assert predict_new(_load(running=waiting), Priority.interactive, EST, now=5.05) == pytest.approx(160.0)


def test_predict_new_replays_the_head_exactly_and_the_rest_as_fluid_work() -> None:
    # One idle slot; 70 interactive tasks of 10 tokens ahead. Two are replayed exactly (2 x slots),
    # 68 are fluid: 68 * 10 ms first token + 68 * 10 tokens * 1 ms.
    head = (10,) * head_needed(1)
    load = _load(free_slots=1, queued_interactive=70, tokens_interactive=700, head_interactive=head)
    assert predict_new(load, Priority.interactive, EST, now=0.0) == pytest.approx(2 * 20.0 + 68 * 20.0)


def test_predict_new_batch_head_spans_both_classes() -> None:
    load = _load(
        free_slots=2,
        queued_interactive=1,
        queued_batch=2,
        tokens_interactive=5,
        tokens_batch=40,
        head_interactive=(5,),
        head_batch=(20, 20),
        total_slots=2,
    )
    # Slots at 0, 0: 15 ms (interactive 5) and 30 ms (batch 20) take them; the next batch task of
    # 20 goes after the first (15 + 30 = 45); the new batch task starts when the 30-slot frees.
    assert predict_new(load, Priority.batch, EST, now=0.0) == 30.0
    assert predict_new(load, Priority.interactive, EST, now=0.0) == 0.0


@pytest.mark.parametrize(
    ("ready_slots", "needed"), [(0, 2), (1, 2), (3, 6), (32, EXACT_PREDICTION_LIMIT), (1000, EXACT_PREDICTION_LIMIT)]
)
def test_head_needed(ready_slots: int, needed: int) -> None:
    assert head_needed(ready_slots) == needed


def test_retry_after_uses_the_head_task_and_spreads_over_slots() -> None:
    assert retry_after_ms(_load(total_slots=2, head_interactive=(90,)), EST) == 50
    assert retry_after_ms(_load(total_slots=1, head_batch=(40,)), EST) == 50
    assert retry_after_ms(_load(total_slots=0), EST) == 138  # typical task, at least one slot
    assert retry_after_ms(_load(total_slots=1), ServiceEstimator(0.0, 0.0)) == 1  # never 0


@pytest.mark.parametrize(("queued", "expected"), [(0, 0), (4, 0), (5, 100), (8, 160), (10, 200)], ids=lambda x: str(x))
def test_backoff_grows_from_half_full(queued: int, expected: int) -> None:
    assert backoff_ms(queued, 10, 100) == expected


def test_slot_init_classes_build_as_their_dataclass_and_stay_frozen() -> None:
    load = QueueLoad(
        running=(RunningTask(1.0, 64, 2),), free_slots=0, queued_interactive=3, queued_batch=1,
        tokens_interactive=192, tokens_batch=64, head_interactive=(64, 64), head_batch=(64,), total_slots=1,
        capacity=10,
    )  # fmt: skip
    running = (RunningTask(started_at=1.0, max_tokens=64, tokens_out=2),)
    same = QueueLoad(running, 0, 3, 1, 192, 64, (64, 64), (64,), 1, 10)
    assert load == same and hash(load) == hash(same) and load.queued == 4
    assert repr(load.running[0]) == "RunningTask(started_at=1.0, max_tokens=64, tokens_out=2)"
    assert dataclasses.replace(load, free_slots=2).free_slots == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        load.free_slots = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        QueueLoad((), 0)  # type: ignore[call-arg]

    @slot_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithDefault:
        a: int
        b: str = "b"

    assert WithDefault(1) == WithDefault(1, "b") and WithDefault(a=2, b="c").b == "c"
    with pytest.raises(TypeError):

        @slot_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class WithFactory:
            a: list[int] = dataclasses.field(default_factory=list)


@settings(max_examples=200, deadline=None)
@given(first=ms, ahead=ahead_st, extra=st.one_of(st.just(0.0), ms))
def test_one_slot_replay_is_the_heap_replay_to_the_bit(first: float, ahead: list[float], extra: float) -> None:
    heap = [first]
    for service in ahead:
        heapq.heapreplace(heap, heap[0] + service)
    expected = heap[0] + extra / len(heap) if extra > 0 else heap[0]
    assert predict_start_ms([first], ahead, extra_ahead_ms=extra) == expected
    assert predict_start_ms(iter([first]), iter(ahead), extra_ahead_ms=extra) == expected


def test_store_rows_and_pushed_keep_their_dataclass_behaviour() -> None:
    from llama_orch.core._queue import Pushed
    from llama_orch.scheduler._store import EventsRow, TaskRow, TaskStateRow

    row = TaskRow("t", 1, "p", b"{}", 2.0, 0, 5)
    assert row == TaskRow(task_id="t", seq=1, pool_id="p", body=b"{}", admitted_wall=2.0, queue_position=0,
                          predicted_start_ms=5)  # fmt: skip
    assert hash(EventsRow("t", 1, b"x")) == hash(EventsRow("t", 1, b"x"))
    assert repr(TaskStateRow("t", "queued", None, False, None)) == (
        "TaskStateRow(task_id='t', state='queued', replica_id=None, settled=False, finished_wall=None)"
    )
    assert Pushed(3) == Pushed(3, None) and Pushed(1, ("a", 2)).evicted == ("a", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.task_id = "u"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Pushed(0).position = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        EventsRow("t", 1)  # type: ignore[call-arg]
