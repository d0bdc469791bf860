"""A managed llama.cpp replica behind the one engine interface: the pool sees an :class:`Engine`;
underneath, a :class:`ReplicaSupervisor` keeps a ``llama-server`` process Ready.

``start()`` runs the preflight (the binary, CPU or GPU), spawns the process and returns once it
is Ready (health and a one-token probe decode), or raises :class:`EngineStartError` saying why not.
A stream on a replica whose process dies ends with ``WORKER_RESET`` (retriable), the replica
takes no task until the supervisor has restarted it, and the pool's queued tasks wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llama_orch.engines import Embeddings, Engine, EngineInfo, EngineRequest, EngineState
from llama_orch.errors import EngineError, OrchError
from llama_orch.pools._config import DEFAULT_CTX_PER_SLOT
from llama_orch.pools._provision import PreflightError, default_threads, find_llama_server, nvidia_gpus, place
from llama_orch.pools._supervisor import LaunchSpec, ReplicaSupervisor, RestartBackoff
from llama_orch_api import Determinism, ErrorCode

if TYPE_CHECKING:
    from llama_orch.pools._config import PoolConfig

log = logging.getLogger("llama_orch.pools.managed")

EMBEDDING_ARGS = ("--embeddings", "--pooling", "mean")
"""What a managed replica of a pool with ``llamacpp.embeddings: true`` runs with (it still decodes)."""
DEFAULT_SLOTS = 2
MANAGED_DETERMINISM = frozenset({Determinism.strict, Determinism.best_effort})
"""What a managed llama.cpp replica guarantees (the determinism suite in tests/pools proves it):
``strict`` tasks run alone on their replica with llama-server's prompt cache off, so the same
prompt, parameters, seed, build and model give byte-identical streams, greedy or seeded sampling."""

_gpus: list[int] | None = None


async def host_gpus() -> list[int]:
    """This host's NVIDIA GPU indices, detected once per process."""
    global _gpus
    if _gpus is None:
        _gpus = await asyncio.to_thread(nvidia_gpus)
    return _gpus


class EngineStartError(OrchError):
    """A managed replica did not become Ready (its process failed to load, crashed, or hung)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.POOL_UNREADY, message, retriable=False)


class ManagedLlamaCpp(Engine):
    """One ``llama-server`` process this orchestrator runs, as an engine replica."""

    name = "llamacpp"
    exclusive_strict = True  # llama.cpp's numerics depend on what else is in the batch

    def __init__(
        self,
        config: PoolConfig,
        replica_id: str,
        *,
        model_ref: str,
        on_change: Callable[[], None] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.config = config
        self.replica_id = replica_id
        self.model_ref = model_ref
        self.host = host
        """The address its llama-server listens on (pool-managerd's ``--bind``; orchestratord's are loopback)."""
        self.model_path: Path | None = None
        """Set by the pool once the model is provisioned, before :meth:`start`."""
        self.supervisor: ReplicaSupervisor | None = None
        self._on_change = on_change
        self._info = EngineInfo(
            "llamacpp",
            "unknown",
            config.ctx_max or DEFAULT_CTX_PER_SLOT,
            config.slots or DEFAULT_SLOTS,
            MANAGED_DETERMINISM,
        )

    @property
    def state(self) -> EngineState:
        return self.supervisor.state if self.supervisor is not None else EngineState.starting

    @property
    def ready(self) -> bool:
        return self.supervisor is not None and self.supervisor.ready

    @property
    def last_error(self) -> str | None:
        return self.supervisor.last_error if self.supervisor is not None else None

    @property
    def pid(self) -> int | None:
        return self.supervisor.pid if self.supervisor is not None else None

    @property
    def port(self) -> int | None:
        """The port of its current process (a restarted process gets a fresh one); None before it ran."""
        return self.supervisor.port if self.supervisor is not None else None

    @property
    def base_url(self) -> str | None:
        engine = self.supervisor.engine if self.supervisor is not None else None
        return engine.base_url if engine is not None else None

    def use_model_file(self, path: Path | None) -> None:
        self.model_path = path

    async def start(self) -> None:
        if self.supervisor is not None:
            return
        if self.model_path is None:
            raise PreflightError(f"replica {self.replica_id}: no model file was provisioned for {self.model_ref!r}")
        binary = await find_llama_server(self.config)
        placement = place(self.config, await host_gpus(), binary)
        log.info(placement.narration, extra={"pool": self.config.id, "narration": placement.narration})
        slots = self.config.slots or DEFAULT_SLOTS
        spec = LaunchSpec(
            binary=binary.path,
            model=self.model_path,
            model_ref=self.model_ref,
            slots=slots,
            ctx_per_slot=self.config.ctx_max or DEFAULT_CTX_PER_SLOT,
            threads=default_threads(self.config),
            gpu_layers=placement.gpu_layers,
            env=placement.env,
            extra_args=(*EMBEDDING_ARGS, *self.config.engine_args)
            if self.config.llamacpp.embeddings
            else tuple(self.config.engine_args),
            host=self.host,
        )
        policy = self.config.restart
        backoff = RestartBackoff(
            policy.max_restarts, policy.window_s, policy.backoff_initial_s, policy.backoff_max_s, policy.cooldown_s
        )
        self.supervisor = ReplicaSupervisor(
            self.replica_id,
            spec,
            backoff=backoff,
            health_interval_s=self.config.health_interval_s,
            ready_timeout_s=self.config.ready_timeout_s,
            version=binary.version,
            determinism=MANAGED_DETERMINISM,
            on_change=lambda _: self._changed(),
        )
        if not await self.supervisor.start():
            raise EngineStartError(self.supervisor.last_error or f"replica {self.replica_id} did not become ready")
        sup = self.supervisor
        self._info = EngineInfo("llamacpp", binary.version, sup.ctx_per_slot, sup.slots, MANAGED_DETERMINISM)

    def _changed(self) -> None:
        self.notify_change()
        if self._on_change is not None:
            self._on_change()

    async def aclose(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()

    async def health(self) -> bool:
        return self.ready

    def describe(self) -> EngineInfo:
        return self._info

    @property
    def pinnable_slots(self) -> int | None:
        """The ``--parallel`` its llama-server runs with."""
        return self._info.slots

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        supervisor = self.supervisor
        engine = supervisor.engine if supervisor is not None else None
        if supervisor is None or engine is None or not supervisor.ready:
            raise EngineError(
                ErrorCode.POOL_UNAVAILABLE,
                f"replica {self.replica_id} is {self.state.value}",
                engine="llamacpp",
                retriable=True,
                retry_after_ms=1000,
            )
        return await engine.embed(inputs)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[list[str], None]:
        supervisor = self.supervisor
        engine = supervisor.engine if supervisor is not None else None
        if supervisor is None or engine is None or not supervisor.ready:
            raise EngineError(
                ErrorCode.POOL_UNAVAILABLE,
                f"replica {self.replica_id} is {self.state.value}",
                engine="llamacpp",
                retriable=True,
                retry_after_ms=1000,
            )
        try:
            async with contextlib.aclosing(engine.stream(request)) as inner:
                async for batch in inner:
                    yield batch
        except EngineError as exc:
            if exc.code in (ErrorCode.WORKER_RESET, ErrorCode.POOL_UNAVAILABLE):
                # Was that the process dying? Until we know, the replica takes no new task.
                await supervisor.check_now()
            raise
