"""Control-plane routes: the artifact store (OC-CLI-2301).

Ids in paths are ``sha256:<hex>`` (the ``:`` may be sent as is or percent-encoded) or the bare
hex. Bodies may be up to ``artifacts.max_bytes``, above the server's general limit; bodies and
answers larger than ``artifacts.inline_max_bytes`` are parsed and serialized in a worker thread so
that a big artifact does not stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import ValidationError

from llama_orch.core import validation_error
from llama_orch.errors import OrchError
from llama_orch.server._http import ARTIFACTS, CONFIG, E, Route, json_response, read_body
from llama_orch_api import Artifact, ArtifactCreate, ArtifactLineage, ArtifactList, ArtifactRef, ErrorCode

LIST_QUERY = ("tag", "kind", "session_id", "task_id", "parent", "limit", "cursor")


async def store_lifespan(app: web.Application) -> AsyncIterator[None]:
    """Open the artifact store before serving, close it after everything else has stopped."""
    await app[ARTIFACTS].open()
    yield
    await app[ARTIFACTS].aclose()


def _parse(body: bytes) -> ArtifactCreate:
    try:
        return ArtifactCreate.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise validation_error(exc) from None


async def create_artifact(request: web.Request) -> web.Response:
    store = request.app[ARTIFACTS]
    body = await read_body(request, limit=request.app[CONFIG].artifacts.max_bytes)
    large = len(body) > store.inline_max_bytes
    artifact = await asyncio.to_thread(_parse, body) if large else _parse(body)
    ref, created = await store.create(artifact, size_hint=len(body))
    return json_response(ref, status=201 if created else 200, headers={"Location": f"/v1/artifacts/{ref.id}"})


async def list_artifacts(request: web.Request) -> web.Response:
    query = request.query
    unknown = sorted(set(query) - set(LIST_QUERY))
    if unknown:
        raise OrchError(ErrorCode.INVALID_PARAMS, f"invalid request: unknown query parameter {unknown[0]!r}")
    single: dict[str, str] = {}
    for name in LIST_QUERY:
        values = query.getall(name, [])
        if name != "tag" and len(values) > 1:
            raise OrchError(ErrorCode.INVALID_PARAMS, f"invalid request: {name}: given more than once")
        if values and name != "tag":
            single[name] = values[0]
    limit = single.get("limit", "100")
    if not (limit.isascii() and limit.isdigit()):
        raise OrchError(ErrorCode.INVALID_PARAMS, "invalid request: limit: must be an integer")
    page = await request.app[ARTIFACTS].find(
        tags=query.getall("tag", []),
        kind=single.get("kind"),
        session_id=single.get("session_id"),
        task_id=single.get("task_id"),
        parent=single.get("parent"),
        limit=int(limit),
        cursor=single.get("cursor"),
    )
    return json_response(page)


async def get_artifact(request: web.Request) -> web.Response:
    store = request.app[ARTIFACTS]
    artifact = await store.get(request.match_info["id"])
    if artifact.size_bytes > store.inline_max_bytes:
        return json_response(await asyncio.to_thread(artifact.model_dump_json))
    return json_response(artifact)


async def get_artifact_lineage(request: web.Request) -> web.Response:
    return json_response(await request.app[ARTIFACTS].lineage(request.match_info["id"]))


ROUTES = [
    Route("POST", "/v1/artifacts", create_artifact, "createArtifact", ArtifactCreate,
          {"200": ArtifactRef, "201": ArtifactRef, "400": E, "405": E, "413": E, "500": E}),
    Route("GET", "/v1/artifacts", list_artifacts, "listArtifacts", query=LIST_QUERY,
          responses={"200": ArtifactList, "400": E, "500": E}),
    Route("GET", "/v1/artifacts/{id}", get_artifact, "getArtifact",
          responses={"200": Artifact, "400": E, "404": E, "500": E}),
    Route("GET", "/v1/artifacts/{id}/lineage", get_artifact_lineage, "getArtifactLineage",
          responses={"200": ArtifactLineage, "400": E, "404": E, "500": E}),
]  # fmt: skip
