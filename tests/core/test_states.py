"""PoolState (core/_states.py): which states admit and which are busy; values are the API's."""

from __future__ import annotations

from typing import get_args

import pytest

from llama_orch.core import PoolState
from llama_orch_api import PoolHealth


@pytest.mark.parametrize(
    ("state", "admits", "busy"),
    [
        (PoolState.ready, True, False),
        (PoolState.reloading, True, True),
        (PoolState.draining, False, True),
        (PoolState.drained, False, False),
        (PoolState.unready, False, False),
    ],
)
def test_admits_and_busy(state: PoolState, admits: bool, busy: bool) -> None:
    assert (state.admits, state.busy) == (admits, busy)


def test_values_are_exactly_the_api_pool_states() -> None:
    api_states = set(get_args(PoolHealth.model_fields["state"].annotation))
    assert {s.value for s in PoolState} == api_states
