"""Replicas registered by pool-managerd hosts: each is an engine endpoint
that its pool uses like a local replica, through the adapter the engine registry builds for the
pool's engine (:func:`llama_orch.engines.build_engine`).

A host registers all its replicas at once (a full statement: replicas of that host it no longer
lists are removed), then heartbeats each. A replica not heard from for ``heartbeat_timeout_s``
leaves placement (``ready = False``; queued tasks go to other replicas) until a heartbeat comes
again; tasks running on it fail on their own when its connection drops (``WORKER_RESET``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from llama_orch.engines import ReplicaFacts, build_engine
from llama_orch.errors import AdmissionError, OrchError
from llama_orch.pools import GpuDevice
from llama_orch.scheduler._config import RegistryConfig
from llama_orch.scheduler._pool import Pool
from llama_orch.scheduler._replicas import Replica
from llama_orch_api import (
    ErrorCode,
    GpuReading,
    HeartbeatAck,
    RegisteredReplica,
    RegistrationAck,
    RemoteReplica,
    ReplicaHeartbeat,
    ReplicaRegistration,
)

log = logging.getLogger("llama_orch.registry")


@dataclass(eq=False)
class _Entry:
    replica: Replica
    pool: Pool
    endpoint: str
    last_seen: float
    reported_ready: bool = True
    silent: bool = False


def _gpus(readings: list[GpuReading]) -> tuple[GpuDevice, ...]:
    return tuple(
        GpuDevice(g.index, g.uuid, g.name, g.vram_total_bytes, g.vram_free_bytes, g.utilization_pct) for g in readings
    )


class Registry:
    """The remote replicas of every pool, by id (``<host>.<name>``)."""

    def __init__(self, pools: dict[str, Pool], config: RegistryConfig) -> None:
        self._pools = pools
        self.config = config
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _check(self, spec: RemoteReplica) -> Pool:
        pool = self._pools.get(spec.pool)
        if pool is None:
            raise AdmissionError(
                ErrorCode.UNKNOWN_POOL, f"no pool {spec.pool!r}", details={"known_pools": sorted(self._pools)}
            )
        if spec.model_ref != pool.model_ref:
            raise OrchError(
                ErrorCode.CONFLICT,
                f"replica {spec.name!r} serves {spec.model_ref!r} but pool {pool.pool_id!r} serves {pool.model_ref!r}",
                details={"pool": pool.pool_id, "model_ref": pool.model_ref},
            )
        if urlsplit(spec.endpoint).scheme not in ("http", "https"):
            raise AdmissionError(ErrorCode.INVALID_PARAMS, f"replica {spec.name!r}: endpoint must be an http(s) URL")
        return pool

    async def register(self, registration: ReplicaRegistration, now: float | None = None) -> RegistrationAck:
        now = time.monotonic() if now is None else now
        host = registration.host
        checked = [(spec, self._check(spec)) for spec in registration.replicas]  # all or nothing
        names = [spec.name for spec, _ in checked]
        if len(set(names)) != len(names):
            raise AdmissionError(ErrorCode.INVALID_PARAMS, f"host {host!r} lists a replica name twice")
        wanted = {f"{host}.{spec.name}" for spec, _ in checked}
        for replica_id in [i for i, e in self._entries.items() if e.replica.host == host and i not in wanted]:
            self.remove(replica_id)
        registered = []
        for spec, pool in checked:
            replica_id = f"{host}.{spec.name}"
            entry = self._entries.get(replica_id)
            if entry is not None and (entry.endpoint != spec.endpoint or entry.pool is not pool):
                self.remove(replica_id)
                entry = None
            if entry is None:
                facts = ReplicaFacts(
                    slots=spec.slots,
                    ctx_max=pool.ctx_max,
                    version=pool.engine_version,
                    determinism=pool.determinism,
                    endpoint=spec.endpoint,
                )
                engine = build_engine(pool.config.engine, pool.config.engine_settings(), facts)
                await engine.start()
                replica = Replica(replica_id, engine, spec.slots, spec.model_ref, host=host)
                entry = self._entries[replica_id] = _Entry(replica, pool, spec.endpoint, now)
                pool.add_replica(replica)
                log.info(
                    "host %s registered replica %s for pool %s at %s (%d slots)",
                    host,
                    replica_id,
                    pool.pool_id,
                    spec.endpoint,
                    spec.slots,
                    extra={"pool": pool.pool_id, "narration": "remote replica joined"},
                )
            entry.replica.slots = spec.slots
            entry.replica.devices = frozenset(spec.devices) if spec.devices is not None else None
            entry.replica.gpus = _gpus(spec.gpus)
            self._heard(entry, now, ready=True)
            registered.append(RegisteredReplica(id=replica_id, pool=pool.pool_id))
        return RegistrationAck(
            host=host,
            replicas=registered,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            heartbeat_timeout_s=self.config.heartbeat_timeout_s,
        )

    def _entry(self, replica_id: str) -> _Entry:
        entry = self._entries.get(replica_id)
        if entry is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no registered replica {replica_id!r}; register it (again)")
        return entry

    def heartbeat(self, replica_id: str, beat: ReplicaHeartbeat, now: float | None = None) -> HeartbeatAck:
        entry = self._entry(replica_id)
        if beat.gpus is not None:
            entry.replica.gpus = _gpus(beat.gpus)
        self._heard(entry, time.monotonic() if now is None else now, ready=beat.ready)
        return HeartbeatAck(
            id=replica_id,
            state="ready" if entry.replica.ready else "unready",
            heartbeat_timeout_s=self.config.heartbeat_timeout_s,
        )

    def _heard(self, entry: _Entry, now: float, *, ready: bool) -> None:
        entry.last_seen = now
        entry.reported_ready = ready
        if entry.silent:
            entry.silent = False
            log.info("replica %s is heard from again", entry.replica.replica_id)
        if entry.replica.ready != ready:
            entry.pool.set_ready(entry.replica, ready)

    def remove(self, replica_id: str) -> None:
        entry = self._entries.pop(replica_id, None)
        if entry is None:
            raise OrchError(ErrorCode.NOT_FOUND, f"no registered replica {replica_id!r}")
        entry.pool.remove_replica(entry.replica)
        log.info("replica %s left pool %s", replica_id, entry.pool.pool_id, extra={"pool": entry.pool.pool_id})

    def expire(self, now: float) -> list[str]:
        """Take replicas silent for longer than the timeout out of placement; returns their ids."""
        timeout = self.config.heartbeat_timeout_s
        expired = []
        for replica_id, entry in self._entries.items():
            if not entry.silent and now - entry.last_seen > timeout:
                entry.silent = True
                entry.pool.set_ready(entry.replica, False)
                expired.append(replica_id)
                log.warning(
                    "replica %s (host %s) silent for %.1f s: it leaves placement until its host heartbeats again",
                    replica_id,
                    entry.replica.host,
                    now - entry.last_seen,
                    extra={"pool": entry.pool.pool_id, "narration": "remote replica silent"},
                )
        return expired


__all__ = ["Registry"]
