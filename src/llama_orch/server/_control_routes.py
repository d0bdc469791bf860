"""Control-plane routes: capability discovery, pools (health, drain, reload), replica sets.

OC-CLI-2102, 2103, 2201, 2202.
"""

from __future__ import annotations

from aiohttp import web

from llama_orch import scheduler
from llama_orch.server._http import ORCH, E, Route, json_response, read_model
from llama_orch_api import (
    Capabilities,
    DrainRequest,
    PoolHealth,
    PoolOperation,
    ReloadRequest,
    ReplicaSetList,
)


async def capabilities(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].capabilities())


async def replicasets(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].replicasets())


async def pool_health(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].pool_health(request.match_info["id"]))


async def drain_pool(request: web.Request) -> web.Response:
    pool = request.app[ORCH].pool(request.match_info["id"])
    body = await read_model(request, DrainRequest)
    return json_response(await scheduler.drain(pool, body.deadline_ms))


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
          {"200": PoolOperation, "400": E, "404": E, "409": E, "413": E, "500": E}),
    Route("POST", "/v1/pools/{id}/reload", reload_pool, "reloadPool", ReloadRequest,
          {"200": PoolOperation, "400": E, "403": E, "404": E, "409": E, "410": E, "413": E, "422": E, "500": E}),
]  # fmt: skip
