"""Control-plane routes: the model catalog and its trust verification (OC-CLI-2101).

Handlers are thin: the :class:`~llama_orch.catalog.Catalog` raises typed errors (``NOT_FOUND``,
``CONFLICT``) that the envelope middleware answers. Its writes (SQLite with fsync) and verification
(hashing whole model files) run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from llama_orch.errors import OrchError
from llama_orch.server._http import CATALOG, E, Route, json_response, read_model
from llama_orch_api import (
    CatalogModel,
    CatalogModelCreate,
    CatalogModelList,
    ErrorCode,
    ModelState,
    ModelStateRequest,
    VerifyResult,
)

LIST_QUERY = ("state",)


async def catalog_lifespan(app: web.Application) -> AsyncIterator[None]:
    """Open the catalog before the orchestrator starts admitting; close it after it stopped."""
    catalog = app[CATALOG]
    await asyncio.to_thread(catalog.open)
    yield
    await asyncio.to_thread(catalog.close)


async def create_model(request: web.Request) -> web.Response:
    spec = await read_model(request, CatalogModelCreate)
    entry = await asyncio.to_thread(request.app[CATALOG].create, spec)
    return json_response(entry, status=201, headers={"Location": f"/v1/catalog/models/{entry.id}"})


async def list_models(request: web.Request) -> web.Response:
    unknown = sorted(set(request.query) - set(LIST_QUERY))
    if unknown:
        raise OrchError(ErrorCode.INVALID_PARAMS, f"invalid request: unknown query parameter {unknown[0]!r}")
    states = request.query.getall("state", [])
    if len(states) > 1:
        raise OrchError(ErrorCode.INVALID_PARAMS, "invalid request: state: given more than once")
    state = None
    if states:
        try:
            state = ModelState(states[0])
        except ValueError:
            allowed = ", ".join(s.value for s in ModelState)
            raise OrchError(ErrorCode.INVALID_PARAMS, f"invalid request: state: must be one of {allowed}") from None
    return json_response(CatalogModelList(models=request.app[CATALOG].list_models(state)))


async def get_model(request: web.Request) -> web.Response:
    return json_response(request.app[CATALOG].get(request.match_info["id"]))


async def delete_model(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[CATALOG].delete, request.match_info["id"])
    return web.Response(status=204)


async def verify_model(request: web.Request) -> web.Response:
    # A failed verification is an answer (200, status "failed"), not an HTTP error.
    return json_response(await request.app[CATALOG].verify(request.match_info["id"]))


async def set_model_state(request: web.Request) -> web.Response:
    change = await read_model(request, ModelStateRequest)
    entry = await asyncio.to_thread(request.app[CATALOG].set_state, request.match_info["id"], change)
    return json_response(entry)


ROUTES = [
    Route("POST", "/v1/catalog/models", create_model, "createCatalogModel", CatalogModelCreate,
          {"201": CatalogModel, "400": E, "409": E, "413": E, "500": E}),
    Route("GET", "/v1/catalog/models", list_models, "listCatalogModels", query=LIST_QUERY,
          responses={"200": CatalogModelList, "400": E, "500": E}),
    Route("GET", "/v1/catalog/models/{id}", get_model, "getCatalogModel",
          responses={"200": CatalogModel, "404": E, "500": E}),
    Route("DELETE", "/v1/catalog/models/{id}", delete_model, "deleteCatalogModel",
          responses={"204": None, "404": E, "500": E}),
    Route("POST", "/v1/catalog/models/{id}/verify", verify_model, "verifyCatalogModel",
          responses={"200": VerifyResult, "404": E, "409": E, "500": E}),
    Route("POST", "/v1/catalog/models/{id}/state", set_model_state, "setCatalogModelState", ModelStateRequest,
          {"200": CatalogModel, "400": E, "404": E, "413": E, "500": E}),
]  # fmt: skip
