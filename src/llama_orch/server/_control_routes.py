"""Control-plane routes: capability discovery, pools (health, drain, reload), replica sets.

OC-CLI-2102, 2103, 2201, 2202.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from llama_orch import scheduler
from llama_orch.errors import OrchError
from llama_orch.server._http import ORCH, E, Route, json_response, read_model
from llama_orch_api import (
    Capabilities,
    DrainRequest,
    PoolHealth,
    PoolOperation,
    ReloadRequest,
    ReplicaSetList,
)

log = logging.getLogger("llama_orch.server")
OPERATIONS = web.AppKey("operations", set[asyncio.Task[PoolOperation]])


async def capabilities(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].capabilities())


async def replicasets(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].replicasets())


async def pool_health(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].pool_health(request.match_info["id"]))


async def operations_lifespan(app: web.Application) -> AsyncIterator[None]:
    """Drains answered at once (``wait: false``) run here; shutdown waits for them to end."""
    app[OPERATIONS] = set()
    yield
    running = app[OPERATIONS]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def _finished(operations: set[asyncio.Task[PoolOperation]], task: asyncio.Task[PoolOperation]) -> None:
    operations.discard(task)
    error = None if task.cancelled() else task.exception()
    # A refusal (OrchError) is answered to the client; anything else is a bug worth a traceback.
    if error is not None and not isinstance(error, OrchError):
        log.error("%s failed", task.get_name(), exc_info=error)


async def drain_pool(request: web.Request) -> web.Response:
    pool = request.app[ORCH].pool(request.match_info["id"])
    body = await read_model(request, DrainRequest)
    if body.wait:
        return json_response(await scheduler.drain(pool, body.deadline_ms))
    operations = request.app[OPERATIONS]
    task = asyncio.create_task(scheduler.drain(pool, body.deadline_ms), name=f"drain {pool.pool_id}")
    operations.add(task)
    task.add_done_callback(functools.partial(_finished, operations))
    # One turn of the loop runs the drain up to its first wait: it has refused (409, a pool already
    # draining or reloading) or the pool is draining by the time this answers.
    await asyncio.sleep(0)
    if task.done():
        return json_response(task.result())  # an empty pool drains at once; result() re-raises a refusal
    started = PoolOperation(
        pool=pool.pool_id,
        operation="drain",
        outcome="started",
        state=pool.state.value,
        model_ref=pool.model_ref,
        duration_ms=0,
        message=f"draining: up to {body.deadline_ms} ms; poll GET /v1/pools/{pool.pool_id}/health for 'drained'",
    )
    return json_response(started, status=202, headers={"Location": f"/v1/pools/{pool.pool_id}/health"})


async def reload_pool(request: web.Request) -> web.Response:
    orch = request.app[ORCH]
    pool = orch.pool(request.match_info["id"])
    body = await read_model(request, ReloadRequest)
    if orch.catalog is not None:
        orch.catalog.check_admissible(body.model_ref)
    try:
        return json_response(await scheduler.reload(pool, body.model_ref, body.deadline_ms))
    finally:
        orch.pools_changed()


ROUTES = [
    Route("GET", "/v1/capabilities", capabilities, "getCapabilities", responses={"200": Capabilities, "500": E}),
    Route("GET", "/v1/replicasets", replicasets, "listReplicaSets", responses={"200": ReplicaSetList, "500": E}),
    Route("GET", "/v1/pools/{id}/health", pool_health, "getPoolHealth",
          responses={"200": PoolHealth, "404": E, "500": E}),
    Route("POST", "/v1/pools/{id}/drain", drain_pool, "drainPool", DrainRequest,
          {"200": PoolOperation, "202": PoolOperation, "400": E, "404": E, "409": E, "413": E, "500": E}),
    Route("POST", "/v1/pools/{id}/reload", reload_pool, "reloadPool", ReloadRequest,
          {"200": PoolOperation, "400": E, "403": E, "404": E, "409": E, "410": E, "413": E, "422": E, "500": E}),
]  # fmt: skip
