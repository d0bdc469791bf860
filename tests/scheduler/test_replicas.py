"""ReplicaSet (scheduler/_replicas.py) and the Engine seam it reads: state, ready, change hook.

The engine here is a small :class:`Engine` whose state the test sets, standing in for a supervised
process (a managed llama-server) so that every transition can be caused on demand; the managed
llama.cpp replica itself is exercised against real llama-server processes in tests/pools and
tests/server/test_real_engine.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

from llama_orch.engines import Engine, EngineInfo, EngineRequest, EngineState
from llama_orch.errors import OrchError
from llama_orch.pools import EngineStartError, PoolConfig
from llama_orch.scheduler import Pool, Replica, ReplicaSet, TaskRecord
from llama_orch_api import ErrorCode, TaskRequest


class Supervised(Engine):
    """An engine with a life of its own: starting until started, then whatever the test says."""

    def __init__(self, *, fail_start: bool = False) -> None:
        self._state = EngineState.starting
        self._error: str | None = None
        self.fail_start = fail_start
        self.model_file: Path | None = None
        self.closed = False

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def last_error(self) -> str | None:
        return self._error

    def set(self, state: EngineState, error: str | None = None) -> None:
        self._state, self._error = state, error
        self.notify_change()

    def use_model_file(self, path: Path | None) -> None:
        self.model_file = path

    async def start(self) -> None:
        if self.fail_start:
            self.set(EngineState.failed, "it would not load")
            raise EngineStartError("it would not load")
        self.set(EngineState.ready)

    async def aclose(self) -> None:
        self.closed = True

    async def health(self) -> bool:
        return self.ready

    def describe(self) -> EngineInfo:
        return EngineInfo("fake", "1", 1024, 3)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        yield ["x"]


def test_the_base_engine_is_ready_and_tells_its_hook() -> None:
    engine = Supervised()
    assert (engine.state, engine.ready) == (EngineState.starting, False)
    seen: list[EngineState] = []
    engine.on_change(lambda e: seen.append(e.state))
    engine.set(EngineState.ready)
    engine.on_change(None)
    engine.set(EngineState.restarting)
    assert seen == [EngineState.ready]


async def test_start_reports_who_failed_and_reads_readiness_through_the_seam(tmp_path: Path) -> None:
    changed: list[str] = []
    rs = ReplicaSet(PoolConfig(id="p", replicas=0), lambda r: changed.append(r.replica_id))
    good, bad = Replica("p/r0", Supervised(), 1, "m", ready=False), Replica("p/r1", Supervised(fail_start=True), 1, "m")
    rs.add(good)
    rs.add(bad)
    errors = await rs.start([good, bad], tmp_path / "model.gguf")
    assert errors == ["it would not load"]
    assert (good.ready, bad.ready) == (True, False)
    assert good.slots == 3  # what the started engine said
    assert isinstance(good.engine, Supervised) and good.engine.model_file == tmp_path / "model.gguf"
    assert changed == ["p/r0", "p/r1"]
    assert not rs.all_gone()
    good.engine.set(EngineState.failed)
    assert rs.all_gone() and not good.ready


async def test_retired_replicas_close_after_their_last_task() -> None:
    rs = ReplicaSet(PoolConfig(id="p", replicas=0), lambda r: None)
    busy, idle = Replica("p/r0", Supervised(), 2, "m"), Replica("p/r1", Supervised(), 2, "m")
    rs.add(busy)
    rs.add(idle)
    rec = TaskRecord("t", TaskRequest(prompt="x", max_tokens=1), "p", queue_position=0, predicted_start_ms=0)
    busy.active, busy.running = 1, {"t": rec}
    fresh = Replica("p/r0g1", Supervised(), 2, "m")
    rs.swap([fresh])
    await asyncio.sleep(0)  # the idle one's close runs as a task
    assert rs.replicas == [fresh] and rs.running == [rec]
    assert isinstance(idle.engine, Supervised) and idle.engine.closed
    assert isinstance(busy.engine, Supervised) and not busy.engine.closed
    await rs.finished_on(busy, "t")
    assert busy.engine.closed and rs.running == []


async def test_a_pool_whose_every_replica_failed_is_unready_and_tells_its_queue() -> None:
    finished: list[TaskRecord] = []
    pool = Pool(PoolConfig(id="p", replicas=0), on_finished=finished.append, session_of=lambda sid: None)
    engine = Supervised()
    pool.add_replica(Replica("p/r0", engine, 1, "mock:tiny", ready=False))
    rec = TaskRecord("t", TaskRequest(prompt="x", max_tokens=1), "p", queue_position=0, predicted_start_ms=0)
    pool.enqueue(rec)
    engine.set(EngineState.restarting, "process died")  # coming back: the pool stays ready
    assert pool.state == "ready" and pool.last_error == "process died"
    engine.set(EngineState.failed, "restart storm")
    assert pool.state == "unready" and pool.unready_error is not None
    assert pool.unready_error.code is ErrorCode.POOL_UNREADY
    assert rec.terminal and finished == [rec]
    assert b"POOL_UNAVAILABLE" in rec.frames[-1]
    # After its cool-down the supervisor brings the replica back: the pool serves again.
    engine.set(EngineState.ready)
    assert pool.state == "ready" and pool.unready_error is None and pool.admits
    await pool.aclose()


async def test_a_pool_unready_for_its_model_stays_so_when_a_replica_is_ready() -> None:
    pool = Pool(PoolConfig(id="p", replicas=0), on_finished=lambda r: None, session_of=lambda sid: None)
    engine = Supervised()
    pool.add_replica(Replica("p/r0", engine, 1, "mock:tiny", ready=False))
    pool._become_unready("model not provisioned")  # as provision_model does, not for want of replicas
    engine.set(EngineState.ready)
    assert pool.state == "unready"
    await pool.aclose()


async def test_a_replica_that_becomes_ready_starts_the_queued_tasks() -> None:
    pool = Pool(PoolConfig(id="p", replicas=0), on_finished=lambda r: None, session_of=lambda sid: None)
    engine = Supervised()
    pool.add_replica(Replica("p/r0", engine, 1, "mock:tiny", ready=False))
    rec = TaskRecord("t", TaskRequest(prompt="x", max_tokens=1), "p", queue_position=0, predicted_start_ms=0)
    pool.enqueue(rec)
    pool.pump()
    assert len(pool.queue) == 1
    engine.set(EngineState.ready)
    assert len(pool.queue) == 0 and rec.replica_id == "p/r0"
    for _ in range(100):  # bounded: the fake engine yields one token and ends
        if rec.terminal:
            break
        await asyncio.sleep(0.01)
    assert rec.state == "done"
    assert pool.abort_all(OrchError(ErrorCode.CANCELLED, "x")) == 0  # nothing left to end
    await pool.aclose()
