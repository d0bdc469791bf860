"""Replica registry wire models: a pool-managerd on a GPU host registers the engine replicas it
serves with orchestratord, then heartbeats each; a replica whose heartbeats stop leaves placement."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from llama_orch_api._numbers import Int

_ID = r"^[A-Za-z0-9._:\-]{1,64}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GpuReading(BaseModel):
    """One GPU of a host, as NVML read it."""

    model_config = ConfigDict(extra="forbid")

    index: Int = Field(ge=0)
    uuid: str = Field(max_length=128)
    name: str = Field(max_length=256)
    vram_total_bytes: Int = Field(ge=0)
    vram_free_bytes: Int = Field(ge=0)
    utilization_pct: Int | None = Field(default=None, ge=0, le=100)


class RemoteReplica(_Request):
    """One engine replica a host serves: an endpoint speaking llama.cpp's ``llama-server`` API."""

    name: str = Field(pattern=_ID, description="The replica's name on its host, unique there (e.g. `r0`).")
    pool: str = Field(pattern=_ID, description="The orchestratord pool it serves.")
    endpoint: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://",
        description="Base URL of the engine (`http://` or `https://`), reachable from orchestratord.",
    )
    model_ref: str = Field(min_length=1, max_length=512, description="Must be the pool's model.")
    slots: Int = Field(ge=1, le=4096)
    devices: list[Int] | None = Field(default=None, description="GPU indices on the host; null on CPU.")
    gpus: list[GpuReading] = Field(default_factory=list, description="Readings of those GPUs.")


class ReplicaRegistration(_Request):
    host: str = Field(pattern=_ID, description="The registering host's name, unique among hosts.")
    replicas: list[RemoteReplica] = Field(
        min_length=1, max_length=256, description="Each `name` at most once (a second one is `400 INVALID_PARAMS`)."
    )

    @field_validator("replicas")
    @classmethod
    def _distinct_names(cls, replicas: list[RemoteReplica]) -> list[RemoteReplica]:
        # JSON Schema cannot say "unique by one field"; the operation documents this refusal.
        names = [r.name for r in replicas]
        if len(set(names)) != len(names):
            raise ValueError("each replica name may appear once")
        return replicas


class RegisteredReplica(_Response):
    id: str = Field(description="`<host>.<name>`: the id to heartbeat and delete, and the `replica` of tasks.")
    pool: str


class RegistrationAck(_Response):
    host: str
    replicas: list[RegisteredReplica]
    heartbeat_interval_s: float = Field(gt=0, description="How often to heartbeat each replica.")
    heartbeat_timeout_s: float = Field(gt=0, description="Silence after which a replica leaves placement.")


class ReplicaHeartbeat(_Request):
    ready: StrictBool = Field(default=True, description="Whether the engine passes its host's health check.")
    gpus: list[GpuReading] | None = Field(default=None, description="Fresh GPU readings; kept when null.")


class HeartbeatAck(_Response):
    id: str
    state: Literal["ready", "unready"] = Field(description="Placement takes only `ready` replicas.")
    heartbeat_timeout_s: float = Field(gt=0)
