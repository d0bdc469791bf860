"""A pool's replica set: the engines that serve it, and their comings and goings.

Replicas are built from the pool's config (``pools.build_engine``), started together, swapped for
fresh ones on a reload, retired, and removed (registered remote replicas leave). A replica that
leaves while it runs tasks is *retired*: it takes no new task, finishes what it runs, and only then
is its engine closed. Readiness is read through the engine seam (``Engine.ready``, the change
hook), never from a concrete engine type; a replica's own ``ready`` flag adds what the engine
cannot know (its host went silent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llama_orch.core import ReplicaView
from llama_orch.engines import Engine, EngineState
from llama_orch.pools import EngineStartError, GpuDevice, PoolConfig, PreflightError, build_engine
from llama_orch.scheduler._tasks import TaskRecord

GONE = frozenset({EngineState.failed, EngineState.stopped})
"""Engine states nothing brings back by itself."""


@dataclass(eq=False)
class Replica:
    replica_id: str
    engine: Engine
    slots: int
    model_ref: str
    active: int = 0
    running: dict[str, TaskRecord] = field(default_factory=dict)
    ready: bool = True
    """False while the replica cannot take tasks (unhealthy, restarting, its host silent): placement skips it."""
    devices: frozenset[int] | None = None
    """Its device mask (GPU indices on its host); None on CPU."""
    gpus: tuple[GpuDevice, ...] = ()
    """The latest readings of its devices (GPU inventory, or a remote host's heartbeat)."""
    host: str | None = None
    """The pool-managerd host of a registered remote replica; None for local ones."""
    slot_of: dict[str, int] = field(default_factory=dict)
    """Task id -> the engine slot it is pinned to (engines with :attr:`Engine.pinnable_slots`)."""

    def pin_slot(self, task_id: str, wanted: int | None) -> int | None:
        """Pin ``task_id`` to an engine slot: ``wanted`` when it is free, else the lowest free one;
        ``None`` when the engine cannot pin or every pinnable slot is taken."""
        count = self.engine.pinnable_slots
        if count is None:
            return None
        taken = set(self.slot_of.values())
        if wanted is not None and 0 <= wanted < count and wanted not in taken:
            slot: int | None = wanted
        else:
            slot = next((i for i in range(count) if i not in taken), None)
        if slot is not None:
            self.slot_of[task_id] = slot
        return slot

    @property
    def vram_free_bytes(self) -> int | None:
        return sum(g.vram_free_bytes for g in self.gpus) if self.gpus else None

    def view(self, pool_id: str) -> ReplicaView:
        return ReplicaView(
            self.replica_id, pool_id, self.ready, self.slots, self.active, self.devices, self.vram_free_bytes
        )


class ReplicaSet:
    """The live replicas of one pool, plus the retired ones still finishing tasks."""

    def __init__(self, config: PoolConfig, on_change: Callable[[Replica], None]) -> None:
        self.config = config
        self.generation = 0
        """Bumped by each reload, so new replica ids never reuse an old one."""
        self.replicas: list[Replica] = []
        self._on_change = on_change
        self._retired: list[Replica] = []
        self._closers: set[asyncio.Task[None]] = set()

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.replicas)

    def __len__(self) -> int:
        return len(self.replicas)

    @property
    def total_slots(self) -> int:
        return sum(r.slots for r in self.replicas)

    @property
    def active(self) -> int:
        return sum(r.active for r in self.replicas)

    @property
    def running(self) -> list[TaskRecord]:
        """Every running task, on live and retired replicas."""
        return [rec for r in (*self.replicas, *self._retired) for rec in r.running.values()]

    def build(self, model_ref: str) -> list[Replica]:
        """Fresh (unstarted) replicas for ``model_ref``, not yet in the set."""
        suffix = f"g{self.generation}" if self.generation else ""
        built = []
        for i in range(self.config.replicas):
            replica_id = f"{self.config.id}/r{i}{suffix}"
            engine = build_engine(self.config, replica_id=replica_id, model_ref=model_ref)
            replica = Replica(replica_id, engine, self.config.slots or engine.describe().slots, model_ref)
            replica.ready = engine.ready  # a managed replica takes tasks only once its process is Ready
            engine.on_change(self._hook(replica))
            built.append(replica)
        return built

    def _hook(self, replica: Replica) -> Callable[[Engine], None]:
        return lambda _engine: self._engine_changed(replica)

    def _engine_changed(self, replica: Replica) -> None:
        if replica in self.replicas:
            replica.ready = replica.engine.ready
            self._on_change(replica)

    def all_gone(self) -> bool:
        """Whether the set has replicas and every one's engine failed or stopped for good."""
        return bool(self.replicas) and all(r.engine.state in GONE for r in self.replicas)

    async def start(self, replicas: list[Replica], model_path: Path | None) -> list[str]:
        """Start ``replicas`` (at once) on ``model_path``; why each one that did not get Ready failed."""
        for replica in replicas:
            replica.engine.use_model_file(model_path)
        results = await asyncio.gather(*(r.engine.start() for r in replicas), return_exceptions=True)
        errors: list[str] = []
        for replica, result in zip(replicas, results, strict=True):
            if isinstance(result, (EngineStartError, PreflightError)):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            replica.ready = replica.engine.ready
            replica.slots = self.config.slots or replica.engine.describe().slots
        return errors

    def swap(self, fresh: list[Replica]) -> None:
        """Make ``fresh`` (started, healthy) the replicas; the old ones retire."""
        old, self.replicas = self.replicas, fresh
        for replica in old:
            self._retire(replica)

    def add(self, replica: Replica) -> None:
        """Serve from ``replica`` too (started; e.g. registered by a pool-managerd host)."""
        replica.engine.on_change(self._hook(replica))
        self.replicas.append(replica)

    def remove(self, replica: Replica) -> bool:
        """Stop placing tasks on ``replica``; tasks running there finish, then its engine closes."""
        if replica not in self.replicas:
            return False
        self.replicas.remove(replica)
        replica.ready = False
        self._retire(replica)
        return True

    def _retire(self, replica: Replica) -> None:
        if replica.active:
            self._retired.append(replica)
        else:
            self._closers.add(asyncio.get_running_loop().create_task(replica.engine.aclose()))
        self._closers = {t for t in self._closers if not t.done()}

    def release(self, replica: Replica, task_id: str) -> None:
        """A task on ``replica`` ended without its runner's clean-up (cancelled before it began):
        free its slot now; a retired replica left idle is closed in the background."""
        if self._free(replica, task_id):
            self._closers.add(asyncio.get_running_loop().create_task(replica.engine.aclose()))

    async def finished_on(self, replica: Replica, task_id: str) -> None:
        """A task on ``replica`` ended: free its slot; the last task on a retired replica closes it."""
        if self._free(replica, task_id):
            await replica.engine.aclose()

    def _free(self, replica: Replica, task_id: str) -> bool:
        """Free the slot; True when ``replica`` is retired and now idle (its engine should close)."""
        replica.slot_of.pop(task_id, None)
        if replica.running.pop(task_id, None) is None:
            return False
        replica.active -= 1
        if replica in self._retired and replica.active == 0:
            self._retired.remove(replica)
            return True
        return False

    async def aclose(self) -> None:
        """Close every engine, live and retired (their tasks have ended)."""
        await asyncio.gather(*self._closers, return_exceptions=True)
        for replica in [*self.replicas, *self._retired]:
            await replica.engine.aclose()


__all__ = ["GONE", "Replica", "ReplicaSet"]
