"""One engine replica from its pool's configuration: the only place that knows which concrete
engine a pool config means (a managed llama-server, an engine at an endpoint, the mock)."""

from __future__ import annotations

from llama_orch.engines import Engine, LlamaCppEngine, MockEngine
from llama_orch.pools._config import PoolConfig
from llama_orch.pools._managed import ManagedLlamaCpp
from llama_orch_api import Determinism


def build_engine(config: PoolConfig, *, replica_id: str = "", model_ref: str | None = None) -> Engine:
    """An unstarted engine replica of ``config``'s pool serving ``model_ref`` (default the pool's).

    A managed llama.cpp replica needs its model file (:meth:`Engine.use_model_file`) before
    ``start()`` and is not ``ready`` until its process is; the others are ready at once.
    """
    if config.managed:
        return ManagedLlamaCpp(config, replica_id, model_ref=model_ref or config.model_ref)
    if config.endpoint is not None:
        determinism = frozenset({Determinism.best_effort})
        if config.engine == "mock":
            determinism = frozenset({Determinism.strict, Determinism.best_effort})
        return LlamaCppEngine(
            config.endpoint,
            engine_name=config.engine,
            slots=config.slots or config.mock.slots,
            ctx_max=config.ctx_max or config.mock.ctx_max,
            version="mock-1" if config.engine == "mock" else "unknown",
            determinism=determinism,
        )
    return MockEngine(config.mock)


__all__ = ["build_engine"]
