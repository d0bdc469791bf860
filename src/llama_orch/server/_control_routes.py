"""Control-plane routes: capability discovery (OC-CLI-2201/2202)."""

from __future__ import annotations

from aiohttp import web

from llama_orch.server._http import ORCH, E, Route, json_response
from llama_orch_api import Capabilities


async def capabilities(request: web.Request) -> web.Response:
    return json_response(request.app[ORCH].capabilities())


ROUTES = [
    Route("GET", "/v1/capabilities", capabilities, "getCapabilities", responses={"200": Capabilities, "500": E}),
]
