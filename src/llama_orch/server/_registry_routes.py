"""Replica registry routes: pool-managerd hosts register their engine replicas and heartbeat them."""

from __future__ import annotations

from aiohttp import web

from llama_orch.server._http import ORCH, E, Route, json_response, read_model
from llama_orch_api import HeartbeatAck, RegistrationAck, ReplicaHeartbeat, ReplicaRegistration


async def register_replicas(request: web.Request) -> web.Response:
    body = await read_model(request, ReplicaRegistration)
    return json_response(await request.app[ORCH].registry.register(body))


async def heartbeat_replica(request: web.Request) -> web.Response:
    body = await read_model(request, ReplicaHeartbeat)
    return json_response(request.app[ORCH].registry.heartbeat(request.match_info["id"], body))


async def remove_replica(request: web.Request) -> web.Response:
    request.app[ORCH].registry.remove(request.match_info["id"])
    return web.Response(status=204)


# Replica ids are `<host>.<name>`, so they always hold a dot: said in the route, so that
# `/v1/replicas/register` (no dot) is only ever that operation (its Allow header names POST only).
REPLICA = "/v1/replicas/{id:[^/]+[.][^/]+}"

ROUTES = [
    Route("POST", "/v1/replicas/register", register_replicas, "registerReplicas", ReplicaRegistration,
          {"200": RegistrationAck, "400": E, "409": E, "413": E, "500": E}),
    Route("POST", REPLICA + "/heartbeat", heartbeat_replica, "heartbeatReplica", ReplicaHeartbeat,
          {"200": HeartbeatAck, "400": E, "404": E, "413": E, "500": E}),
    Route("DELETE", REPLICA, remove_replica, "removeReplica", responses={"204": None, "404": E, "500": E}),
]  # fmt: skip
