"""Pool (scheduler/_pool.py): limits from config and engine; what admission reads of it."""

from __future__ import annotations

import logging

import pytest

from llama_orch.core import PoolState
from llama_orch.engines.mock import MockSettings
from llama_orch.pools import PoolConfig
from llama_orch.scheduler import Pool


def test_max_tokens_above_an_endpoint_engines_context_is_capped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = PoolConfig(
        id="p", engine="mock", endpoint="http://127.0.0.1:9", mock=MockSettings(ctx_max=512), max_tokens=1000
    )
    with caplog.at_level(logging.WARNING, logger="llama_orch.pool"):
        pool = Pool(config, on_finished=lambda r: None, session_of=lambda s: None)
    assert (pool.ctx_max, pool.limits.max_tokens) == (512, 512)
    assert "capping it there" in caplog.text


def test_snapshot_of_a_pool_that_does_not_admit_carries_no_load() -> None:
    pool = Pool(PoolConfig(id="p", mock=MockSettings(slots=3)), on_finished=lambda r: None, session_of=lambda s: None)
    assert pool.snapshot(0.0).load.free_slots == 3
    pool.state = PoolState.draining
    snap = pool.snapshot(0.0)
    assert not snap.admits and snap.load.free_slots == 0 and snap.state is PoolState.draining
