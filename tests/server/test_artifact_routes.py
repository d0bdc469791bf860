"""``/v1/artifacts`` over real HTTP on loopback: create, dedupe, get, list, lineage, errors, restart."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import rfc8785
import yaml
from aiohttp import web

from llama_orch.server.app import create_app
from llama_orch.server.config import ArtifactsConfig, OrchestratorConfig
from llama_orch_api import Artifact, ArtifactLineage, ArtifactList, ArtifactRef, ErrorEnvelope
from tests.conftest import Serve, fast_config, free_port

ROOT = Path(__file__).resolve().parents[2]
CID = "artifact-test.1"
PLAN = "# Plan\n1. Write the contract.\n2. Write the tests."


def config(tmp_path: Path | None = None, **artifacts: Any) -> OrchestratorConfig:
    update: dict[str, Any] = {"artifacts": ArtifactsConfig(**artifacts)}
    if tmp_path is not None:
        update["data_dir"] = str(tmp_path)
    return fast_config().model_copy(update=update)


def expected_id(kind: str, content: Any, parent: str | None = None) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps({"kind": kind, "content": content, "parent": parent})).hexdigest()


class Api:
    """A small client that records every (path template, method) → status it saw."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.answered: dict[tuple[str, str], set[str]] = {}

    async def call(
        self, method: str, path: str, template: str, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"X-Correlation-Id": CID, **kwargs.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as resp:
            body = await resp.read()
        assert resp.headers.get("X-Correlation-Id") == CID, f"{method} {path}: correlation id not echoed"
        assert resp.headers["Content-Type"].startswith("application/json"), f"{method} {path}: not JSON"
        self.answered.setdefault((template, method.lower()), set()).add(str(resp.status))
        return resp.status, json.loads(body), resp

    async def post(self, body: Any = None, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        if body is not None:
            # A sized stream: aiohttp warns about raw bodies over 1 MiB; still sent with Content-Length.
            kwargs["data"] = io.BytesIO(json.dumps(body, ensure_ascii=False).encode())
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        return await self.call("POST", "/v1/artifacts", "/v1/artifacts", **kwargs)

    async def get(self, artifact_id: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.call("GET", f"/v1/artifacts/{artifact_id}", "/v1/artifacts/{id}")

    async def lineage(self, artifact_id: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.call("GET", f"/v1/artifacts/{artifact_id}/lineage", "/v1/artifacts/{id}/lineage")

    async def list(self, params: Any = ()) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.call("GET", "/v1/artifacts", "/v1/artifacts", params=params)


@pytest.fixture
async def api(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> Api:
    return Api(http, await serve(config(tmp_path, max_bytes=1 << 20, inline_max_bytes=1024)))


async def chunks(data: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    """A body aiohttp sends chunked (no Content-Length): the server must count it as it arrives."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def assert_error(status: int, body: Any, expected_status: int, code: str) -> ErrorEnvelope:
    assert status == expected_status, body
    envelope = ErrorEnvelope.model_validate(body)
    assert envelope.code == code, body
    assert envelope.correlation_id == CID
    return envelope


# -- the happy paths -------------------------------------------------------------------------------


async def test_create_then_repost_returns_the_same_id_with_200_and_merged_tags(api: Api) -> None:
    body = {"kind": "plan", "content": PLAN, "media_type": "text/markdown", "tags": ["loop:42", "role:planner"]}
    status, created, resp = await api.post(body)
    assert status == 201, created
    ref = ArtifactRef.model_validate(created)
    assert ref.id == expected_id("plan", PLAN)
    assert resp.headers["Location"] == f"/v1/artifacts/{ref.id}"
    assert (ref.kind, ref.media_type, ref.size_bytes, ref.parent) == ("plan", "text/markdown", len(PLAN.encode()), None)

    status, again, _ = await api.post({**body, "tags": ["role:reviewer"]})
    assert status == 200, again
    assert again["id"] == ref.id
    assert again["tags"] == ["loop:42", "role:planner", "role:reviewer"]
    assert again["created_at"] == created["created_at"]


async def test_get_returns_content_and_accepts_the_id_in_every_spelling(api: Api) -> None:
    record = {"task_id": "t-7", "engine": "mock", "seed": 7, "tokens_out": 16}
    _, ref, _ = await api.post({"kind": "trace", "content": record, "task_id": "t-7", "tags": ["task-record"]})
    hexd = ref["id"].removeprefix("sha256:")
    for spelling in (ref["id"], f"sha256%3A{hexd}", hexd, hexd.upper()):
        status, body, _ = await api.get(spelling)
        assert status == 200, (spelling, body)
        artifact = Artifact.model_validate(body)
        assert artifact.id == ref["id"]
        assert artifact.content == record
        assert (artifact.task_id, artifact.tags, artifact.media_type) == ("t-7", ["task-record"], "application/json")


async def test_list_by_tag_kind_session_task_and_parent(api: Api) -> None:
    _, plan, _ = await api.post({"kind": "plan", "content": "p", "tags": ["loop:1"], "session_id": "s1"})
    _, d1, _ = await api.post(
        {"kind": "diff", "content": "d1", "parent": plan["id"], "tags": ["loop:1", "role:coder"], "session_id": "s1"}
    )
    _, d2, _ = await api.post(
        {"kind": "diff", "content": "d2", "parent": plan["id"], "tags": ["loop:2"], "task_id": "t2"}
    )

    async def ids(params: Any) -> list[str]:
        status, body, _ = await api.list(params)
        assert status == 200, body
        return [a.id for a in ArtifactList.model_validate(body).artifacts]

    assert await ids({}) == [d2["id"], d1["id"], plan["id"]]
    assert await ids({"tag": "loop:1"}) == [d1["id"], plan["id"]]
    assert await ids([("tag", "loop:1"), ("tag", "role:coder")]) == [d1["id"]]
    assert await ids({"kind": "diff"}) == [d2["id"], d1["id"]]
    assert await ids({"session_id": "s1"}) == [d1["id"], plan["id"]]
    assert await ids({"task_id": "t2"}) == [d2["id"]]
    assert await ids({"parent": plan["id"]}) == [d2["id"], d1["id"]]
    assert await ids({"kind": "summary"}) == []

    status, first, _ = await api.list({"limit": "2"})
    assert status == 200 and len(first["artifacts"]) == 2 and first["next_cursor"]
    status, rest, _ = await api.list({"limit": "2", "cursor": first["next_cursor"]})
    assert [a["id"] for a in rest["artifacts"]] == [plan["id"]] and rest["next_cursor"] is None
    assert "content" not in first["artifacts"][0]  # listing is metadata only


async def test_lineage_of_a_diff_leads_back_to_its_plan(api: Api) -> None:
    _, plan, _ = await api.post({"kind": "plan", "content": PLAN})
    _, diff, _ = await api.post({"kind": "diff", "content": "--- a\n+++ b\n", "parent": plan["id"]})
    assert diff["id"] == expected_id("diff", "--- a\n+++ b\n", plan["id"])
    _, result, _ = await api.post({"kind": "test-result", "content": {"passed": 3}, "parent": diff["id"]})
    status, body, _ = await api.lineage(result["id"])
    assert status == 200, body
    lineage = ArtifactLineage.model_validate(body)
    assert [a.id for a in lineage.ancestors] == [diff["id"], plan["id"]]
    assert (lineage.id, lineage.root) == (result["id"], plan["id"])
    status, root, _ = await api.lineage(plan["id"])
    assert (status, root["ancestors"], root["root"]) == (200, [], plan["id"])


async def test_a_body_above_the_general_limit_is_fine_for_artifacts_only(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cfg = config(tmp_path, max_bytes=4 << 20).model_copy(
        update={"server": fast_config().server.model_copy(update={"max_body_bytes": 64 * 1024})}
    )
    api = Api(http, await serve(cfg))
    big = "é" * (1 << 20)  # 2 MiB of UTF-8, far above server.max_body_bytes
    status, ref, _ = await api.post({"kind": "diff", "content": big})
    assert status == 201, ref
    assert ref["size_bytes"] == len(big.encode())
    status, body, _ = await api.get(ref["id"])
    assert status == 200 and body["content"] == big
    # Other routes keep the general limit, with or without a Content-Length.
    for data in (b"x" * (128 * 1024), chunks(b"x" * (128 * 1024))):
        async with http.post(f"{api.base}/v1/tasks", data=data) as resp:
            assert resp.status == 413, await resp.text()
            assert (await resp.json())["code"] == "PAYLOAD_TOO_LARGE"


# -- bad input: a typed 4xx envelope, never a 5xx ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        pytest.param({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, None, id="malformed"),
        pytest.param({"data": b""}, "kind", id="empty-body"),
        pytest.param({"json": ["kind", "plan"]}, None, id="not-an-object"),
        pytest.param({"json": {"kind": "poem", "content": "x"}}, "kind", id="unknown-kind"),
        pytest.param({"json": {"kind": "plan", "content": "x", "colour": "red"}}, "colour", id="unknown-field"),
        pytest.param({"json": {"kind": "plan"}}, "content", id="missing-content"),
        pytest.param({"json": {"kind": "plan", "content": "x", "tags": ["a b"]}}, "tags.0", id="bad-tag"),
        pytest.param({"json": {"kind": "plan", "content": "x", "parent": "abc"}}, "parent", id="malformed-parent"),
        pytest.param(
            {"json": {"kind": "plan", "content": "x", "parent": "sha256:" + "0" * 64}}, "parent", id="missing-parent"
        ),
        pytest.param({"data": b'{"kind": "plan", "content": 1e400}'}, "content", id="infinite-number"),
        pytest.param({"data": b'{"kind": "plan", "content": 9007199254740993}'}, "content", id="int-beyond-2**53"),
    ],
)
async def test_bad_create_requests_are_400_invalid_params(api: Api, kwargs: dict[str, Any], loc: str | None) -> None:
    status, body, _ = await api.post(**kwargs)
    assert_error(status, body, 400, "INVALID_PARAMS")
    if loc is not None:
        assert loc in [e["loc"] for e in body["details"]["errors"]], body
    status, page, _ = await api.list()
    assert page["artifacts"] == []  # nothing was stored


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversize_body_is_413(serve: Serve, http: aiohttp.ClientSession, chunked: bool) -> None:
    api = Api(http, await serve(config(max_bytes=4096)))
    payload = json.dumps({"kind": "plan", "content": "x" * 5000}).encode()
    status, body, _ = await api.post(data=chunks(payload) if chunked else payload)
    envelope = assert_error(status, body, 413, "PAYLOAD_TOO_LARGE")
    assert "4096" in envelope.message
    status, ok, _ = await api.post({"kind": "plan", "content": "x" * 1000})
    assert status == 201, ok


async def test_unknown_and_malformed_ids(api: Api) -> None:
    unknown = "sha256:" + "1" * 64
    assert_error(*(await api.get(unknown))[:2], 404, "NOT_FOUND")
    assert_error(*(await api.lineage(unknown))[:2], 404, "NOT_FOUND")
    for bad in ("nope", "sha256:123", "md5:" + "1" * 64):
        assert_error(*(await api.get(bad))[:2], 400, "INVALID_PARAMS")
        assert_error(*(await api.lineage(bad))[:2], 400, "INVALID_PARAMS")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"cursor": "x"},
        {"kind": "poem"},
        {"parent": "abc"},
        {"colour": "red"},
        [("kind", "plan"), ("kind", "diff")],
    ],
)
async def test_bad_list_queries_are_400(api: Api, params: Any) -> None:
    assert_error(*(await api.list(params))[:2], 400, "INVALID_PARAMS")


async def test_wrong_method_is_405_with_allow(api: Api) -> None:
    status, body, resp = await api.call("PUT", "/v1/artifacts", "/v1/artifacts")
    assert_error(status, body, 405, "METHOD_NOT_ALLOWED")
    assert {"GET", "POST"} <= set(resp.headers["Allow"].split(","))


# -- restart ----------------------------------------------------------------------------------------


@pytest.fixture
async def start_app() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(cfg: OrchestratorConfig) -> tuple[str, web.AppRunner]:
        runner = web.AppRunner(create_app(cfg), handle_signals=False)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}", runner

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_artifacts_survive_an_orchestratord_restart(
    start_app: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cfg = config(tmp_path, inline_max_bytes=1024)
    base, runner = await start_app(cfg)
    first = Api(http, base)
    _, plan, _ = await first.post({"kind": "plan", "content": PLAN, "tags": ["keep"], "session_id": "s1"})
    big = "B" * 50_000
    _, diff, _ = await first.post({"kind": "diff", "content": big, "parent": plan["id"]})
    await runner.cleanup()  # orchestratord stops

    base, _ = await start_app(cfg)
    second = Api(http, base)
    status, got, _ = await second.get(plan["id"])
    assert (status, got["content"], got["tags"], got["session_id"]) == (200, PLAN, ["keep"], "s1")
    status, got, _ = await second.get(diff["id"])
    assert (status, got["content"]) == (200, big)
    _, lineage, _ = await second.lineage(diff["id"])
    assert [a["id"] for a in lineage["ancestors"]] == [plan["id"]]
    status, again, _ = await second.post({"kind": "plan", "content": PLAN, "tags": ["more"]})
    assert (status, again["id"], again["tags"]) == (200, plan["id"], ["keep", "more"])


# -- the contract ---------------------------------------------------------------------------------


async def test_every_status_answered_is_declared_in_control_yaml(api: Api) -> None:
    """Provoke every status the artifact routes can answer; each must be in the YAML."""
    _, plan, _ = await api.post({"kind": "plan", "content": "p"})  # 201
    await api.post({"kind": "plan", "content": "p"})  # 200
    await api.post(data=b"{")  # 400
    await api.post({"kind": "plan", "content": "x" * (2 << 20)})  # 413
    await api.call("PUT", "/v1/artifacts", "/v1/artifacts#put")  # 405
    await api.list()  # 200
    await api.list({"limit": "0"})  # 400
    for call in (api.get, api.lineage):
        await call(plan["id"])  # 200
        await call("sha256:" + "2" * 64)  # 404
        await call("bad")  # 400
    answered = api.answered
    answered[("/v1/artifacts", "post")] |= answered.pop(("/v1/artifacts#put", "put"))
    spec = yaml.safe_load((ROOT / "contracts" / "openapi" / "control.yaml").read_text(encoding="utf-8"))
    problems = []
    for (path, method), statuses in sorted(answered.items()):
        op = spec["paths"][path][method]
        assert "x-llorch-status" not in op, f"{method.upper()} {path} is still marked planned"
        missing = statuses - set(op["responses"])
        if missing:
            problems.append(f"{method.upper()} {path}: answered {sorted(missing)}, not declared")
    assert problems == []
    assert answered[("/v1/artifacts", "post")] == {"200", "201", "400", "405", "413"}
    assert answered[("/v1/artifacts/{id}", "get")] == {"200", "400", "404"}
