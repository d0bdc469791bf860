"""One engine replica from its pool's configuration: the only place that knows which concrete
engine a pool config means (a managed llama-server, or an adapter the engine registry builds for
an engine at an endpoint or the mock)."""

from __future__ import annotations

from llama_orch.engines import Engine, ReplicaFacts
from llama_orch.engines import build_engine as build_adapter
from llama_orch.pools._config import PoolConfig
from llama_orch.pools._managed import ManagedLlamaCpp
from llama_orch_api import Determinism


def replica_facts(config: PoolConfig, *, endpoint: str | None = None, slots: int | None = None) -> ReplicaFacts:
    """What the pool knows of a replica of its engine (``endpoint``: a registered replica's own)."""
    determinism = frozenset({Determinism.best_effort})
    if config.engine == "mock":
        determinism = frozenset({Determinism.strict, Determinism.best_effort})
    default_slots = config.mock.slots if config.engine == "mock" else 1
    default_ctx = config.mock.ctx_max if config.engine == "mock" else 4096
    return ReplicaFacts(
        slots=slots or config.slots or default_slots,
        ctx_max=config.ctx_max or default_ctx,
        version="mock-1" if config.engine == "mock" else "unknown",
        determinism=determinism,
        endpoint=endpoint or config.endpoint,
    )


def build_engine(config: PoolConfig, *, replica_id: str = "", model_ref: str | None = None) -> Engine:
    """An unstarted engine replica of ``config``'s pool serving ``model_ref`` (default the pool's).

    A managed llama.cpp replica needs its model file (:meth:`Engine.use_model_file`) before
    ``start()`` and is not ``ready`` until its process is; the others are ready at once.
    """
    if config.managed:
        return ManagedLlamaCpp(config, replica_id, model_ref=model_ref or config.model_ref)
    return build_adapter(config.engine, config.engine_settings(), replica_facts(config))


__all__ = ["build_engine", "replica_facts"]
