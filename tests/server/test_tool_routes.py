"""POST /v1/tools/fetch and GET /metrics on a real orchestratord over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llama_orch.server._security import SECURITY
from llama_orch.server.app import create_app
from llama_orch.server.config import OrchestratorConfig
from tests.conftest import Serve, fast_config, read_stream
from tests.policy.conftest import GuardBackend
from tests.server.test_security import with_sections

SECRET = "sk-abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=f"# Docs\nuse key {SECRET}\n", content_type="text/markdown",
                            headers={"Set-Cookie": "sid=abc", "Cache-Control": "max-age=60"})  # fmt: skip

    async def to_metadata(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_get("/docs", docs)
    app.router.add_get("/to-metadata", to_metadata)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def fetch_config() -> OrchestratorConfig:
    rules = {"fetch": {"allow_domains": ["127.0.0.1", "*.example.org"], "allow_networks": ["127.0.0.1/32"]}}
    return with_sections(fast_config(), policy={"outbound": rules})


async def _artifact(http: aiohttp.ClientSession, base: str, artifact_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/artifacts/{artifact_id}") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def test_an_allowed_url_is_fetched_redacted_and_recorded(
    serve: Serve, http: aiohttp.ClientSession, upstream: int
) -> None:
    base = await serve(fetch_config())
    url = f"http://127.0.0.1:{upstream}/docs?token=t0ps3cr3tvalue"
    async with http.post(f"{base}/v1/tools/fetch", json={"url": url}) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body["status"] == 200 and body["cache"] == "miss" and body["hops"][0]["rule"] == "address:allowed-network"
    assert SECRET not in body["text"] and "t0ps3cr3tvalue" not in str(body) and "set-cookie" not in body["headers"]
    stored = await _artifact(http, base, body["artifact_id"])
    assert stored["kind"] == "trace" and "tool:fetch" in stored["tags"] and "outcome:fetched" in stored["tags"]
    content = stored["content"]
    assert content["tool"] == "fetch" and content["sha256"] == body["sha256"] and content["identity"] == "local:local"
    assert SECRET not in str(content) and "t0ps3cr3tvalue" not in str(content)
    async with http.post(f"{base}/v1/tools/fetch", json={"url": url}) as resp:
        assert (await resp.json())["cache"] == "hit"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "domain:not-allowed"),
        ("http://2130706433/", "url:ip-spelling"),
        ("file:///etc/passwd", "url:scheme"),
        ("http://docs.example.org@127.0.0.1/", "url:userinfo"),
    ],
)
async def test_refused_urls_are_typed_errors_and_recorded(
    serve: Serve, http: aiohttp.ClientSession, url: str, rule: str
) -> None:
    config = fetch_config()
    app = create_app(config)
    guard = GuardBackend()  # nothing is reachable: a check that failed would fail the test here
    app[SECURITY].fetcher.network = guard
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with http.post(f"{base}/v1/tools/fetch", json={"url": url}) as resp:
            body = await resp.json()
            assert resp.status == 403 and body["code"] == "POLICY_DENIED" and body["policy_label"] == rule
        assert guard.attempts == []
        async with http.get(f"{base}/v1/artifacts", params={"tag": "outcome:refused"}) as resp:
            (item,) = (await resp.json())["artifacts"]
        stored = await _artifact(http, base, item["id"])
        assert stored["content"]["error"]["policy_label"] == rule
    finally:
        await runner.cleanup()


async def test_a_redirect_to_metadata_is_refused(serve: Serve, http: aiohttp.ClientSession, upstream: int) -> None:
    base = await serve(with_sections(fetch_config(), policy={"outbound": {"fetch": {
        "allow_domains": ["*"], "allow_networks": ["127.0.0.1/32"]}}}))  # fmt: skip
    async with http.post(f"{base}/v1/tools/fetch", json={"url": f"http://127.0.0.1:{upstream}/to-metadata"}) as resp:
        body = await resp.json()
    assert resp.status == 403 and body["policy_label"] == "ssrf:link-local"


async def test_bad_fetch_requests(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fetch_config())
    for bad in ({}, {"url": ""}, {"url": "http://x/", "method": "POST"}, {"url": "http://x/", "max_bytes": 0},
                {"url": "http://x/", "extra": 1}):  # fmt: skip
        async with http.post(f"{base}/v1/tools/fetch", json=bad) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == "INVALID_PARAMS"
    async with http.post(f"{base}/v1/tools/fetch", json={"url": "http://nowhere.invalid./"}) as resp:
        assert resp.status == 403  # *.example.org and 127.0.0.1 only: never even resolved


async def test_metrics_exposition_after_tasks(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(fast_config())
    tasks = []
    for i in range(3):
        async with http.post(f"{base}/v1/tasks", json={"prompt": f"p{i}", "max_tokens": 4, "priority": "batch"}) as r:
            tasks.append((await r.json())["task_id"])
    for task_id in tasks:
        events = await read_stream(http, base, task_id)
        assert events[-1].event == "end"
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 10**9}) as resp:
        assert resp.status == 400
    text = ""
    async with asyncio.timeout(10):
        while 'llorch_tasks_finished_total{outcome="done",pool="default"} 3.0' not in text:
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
            await asyncio.sleep(0.05)
    assert 'llorch_tasks_enqueued_total{pool="default",priority="batch"} 3.0' in text
    assert 'llorch_tasks_rejected_total{pool="unknown",reason="MAX_TOKENS_EXCEEDED"} 1.0' in text
    assert 'llorch_queue_depth{pool="default",priority="interactive"} 0.0' in text
    assert re.search(r'llorch_replicas\{pool="default",state="ready"\} 1\.0', text)
    assert 'llorch_tokens_out_total{pool="default"} 12.0' in text
    assert 'llorch_time_to_first_token_seconds_count{pool="default"} 3.0' in text
    assert 'llorch_http_requests_total{method="POST",route="/v1/tasks",status="202"} 3.0' in text
    assert not any(task_id in text for task_id in tasks)  # no task ids as labels
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing under CI=true (Debian package 'prometheus')")
        pytest.skip("promtool not installed")
    check = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(check.communicate(text.encode()), 60)
    assert check.returncode == 0, out.decode()


async def test_metrics_can_be_turned_off(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    base = await serve(with_sections(fast_config(), telemetry={"metrics": False}))
    async with http.get(f"{base}/metrics") as resp:
        assert resp.status == 404
