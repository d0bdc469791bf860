"""Budget reservations: never overspend, whatever the interleaving."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_orch.core import Budget, BudgetExceeded


def test_reserve_settle_release() -> None:
    b = Budget(tokens_limit=100, cost_limit=10.0)
    b.reserve("a", 40, 4.0)
    b.reserve("b", 40, 4.0)
    assert (b.tokens_remaining(), b.cost_remaining()) == (20, pytest.approx(2.0))
    with pytest.raises(BudgetExceeded) as err:
        b.reserve("c", 21, 0.0)
    assert err.value.dimension == "tokens"
    b.settle("a", 10, 1.0)  # used less than reserved: the rest returns
    assert b.tokens_used == 10
    assert b.tokens_remaining() == 50
    b.release("b")
    assert b.tokens_remaining() == 90
    assert b.cost_remaining() == pytest.approx(9.0)


def test_cost_dimension_and_exact_fit() -> None:
    b = Budget(cost_limit=1.0)
    b.reserve("a", 10, 0.7)
    with pytest.raises(BudgetExceeded) as err:
        b.reserve("b", 10, 0.31)
    assert err.value.dimension == "cost"
    b.reserve("c", 10, 0.3)  # exactly what is left, float rounding notwithstanding
    assert b.cost_remaining() == pytest.approx(0.0)


def test_settle_never_charges_more_than_reserved() -> None:
    b = Budget(tokens_limit=10)
    b.reserve("a", 5, 0.0)
    b.settle("a", 50, 0.0)
    assert b.tokens_used == 5


def test_wall_time_is_charged_and_capped() -> None:
    b = Budget(wall_ms_limit=100)
    assert b.charge_wall(60) is True
    assert b.charge_wall(60) is False
    assert b.wall_ms_used == 100
    with pytest.raises(BudgetExceeded) as err:
        b.reserve("late", 1, 0.0)
    assert err.value.dimension == "wall_ms"


def test_unlimited_budget_reports_none() -> None:
    b = Budget()
    b.reserve("a", 10**9, 10.0**9)
    assert (b.tokens_remaining(), b.cost_remaining(), b.wall_ms_remaining()) == (None, None, None)
    assert b.charge_wall(10**9) is True


def test_settling_an_unreserved_task_charges_nothing() -> None:
    b = Budget(tokens_limit=1)
    b.settle("admitted-before-the-budget", 2, 0.0)
    assert b.tokens_used == 0


def test_double_reservation_is_a_programming_error() -> None:
    b = Budget(tokens_limit=10)
    b.reserve("a", 1, 0.0)
    with pytest.raises(ValueError, match="already holds"):
        b.reserve("a", 1, 0.0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 30), st.integers(1, 50)),
        st.tuples(st.just("settle"), st.integers(0, 30), st.integers(0, 60)),
        st.tuples(st.just("release"), st.integers(0, 30), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(limit=st.integers(1, 200), ops=ops)
def test_used_plus_reserved_never_exceeds_the_limit(limit: int, ops: list[tuple[str, int, int]]) -> None:
    b = Budget(tokens_limit=limit, cost_limit=limit / 10)
    for op, task, amount in ops:
        tid = f"t{task}"
        if op == "reserve":
            with contextlib.suppress(BudgetExceeded, ValueError):
                b.reserve(tid, amount, amount / 100)
        elif op == "settle":
            b.settle(tid, amount, amount / 100)
        else:
            b.release(tid)
        assert b.tokens_used + b.tokens_reserved <= limit
        assert b.cost_used + b.cost_reserved <= limit / 10 + 1e-6
