"""A configured secret (a canary) sent every way a secret can arrive never comes out in logs,
artifacts, task records or responses.

The canary goes in: in a prompt, in request headers (a bearer token, an API-key header, a
correlation id), in an upstream URL given to the fetch tool (query and path), in the model's own
output (an engine that says it), and in error paths (an unknown field named after it, a path that
does not exist). Everything that comes out is then searched: the log lines (our handler and
pytest's), every stored artifact (task records with their transcripts, fetch traces), the audit
log, and every response's headers and body — except the task's own token stream, which is the
caller's output and is delivered as the engine produced it (its stored transcript is redacted).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llama_orch.engines.mock import MockEngine, MockSettings
from llama_orch.engines.mock_server import ENGINE_KEY
from llama_orch.engines.mock_server import make_app as make_mock_app
from llama_orch.policy import Redactor, default_redactor, set_default_redactor
from llama_orch.server.app import create_app
from llama_orch.server.config import PoolConfig
from llama_orch.telemetry import configure_logging, stop_redacting_records
from tests.conftest import fast_config, parse_sse
from tests.server.test_security import with_sections

CANARY = "canary-5e1f0c2b9d7a4e63"
SPLIT = [CANARY[:9], CANARY[9:17], CANARY[17:]]
"""The canary as an engine's tokens often carry a word: in pieces, none of which is a secret."""


@pytest.fixture
def restore_redactor() -> Iterator[None]:
    old = default_redactor()
    yield
    set_default_redactor(old)


class Seen:
    """Everything the server answered: status, headers and body text of each response."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def take(self, resp: aiohttp.ClientResponse) -> str:
        text = await resp.text()
        self.texts.append(json.dumps(dict(resp.headers)) + "\n" + text)
        return text


async def _engine_that_leaks() -> tuple[web.AppRunner, str]:
    app = make_mock_app(MockSettings(tokens_per_s=None, first_token_ms=0, slots=2))
    tokens = ["the ", "key ", "is ", CANARY, " ok", " again: ", *SPLIT]
    app[ENGINE_KEY] = MockEngine(app[ENGINE_KEY].settings, handler=lambda r: tokens)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _upstream() -> tuple[web.AppRunner, int]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"page for {request.query_string} with {CANARY}", headers={"X-Echo": CANARY})

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def test_a_configured_secret_never_comes_out(
    http: aiohttp.ClientSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    restore_redactor: None,
) -> None:
    monkeypatch.setenv("LLORCH_TEST_CANARY", CANARY)
    engine, engine_url = await _engine_that_leaks()
    upstream, upstream_port = await _upstream()
    config = with_sections(
        fast_config(),
        data_dir=str(tmp_path / "data"),
        pools=[PoolConfig(id="default", replicas=0, mock=MockSettings()).model_dump(mode="json")],
        policy={
            "redaction": {"literals_env": ["LLORCH_TEST_CANARY"]},
            "outbound": {"fetch": {"allow_domains": ["127.0.0.1"], "allow_networks": ["127.0.0.1/32"]}},
        },
    )
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    stream = io.StringIO()
    handler = configure_logging("DEBUG", fmt="json", stream=stream)
    seen = Seen()
    tokens: list[str] = []
    try:
        with caplog.at_level(logging.DEBUG):
            replica = {"name": "r0", "pool": "default", "endpoint": engine_url, "model_ref": "mock:tiny", "slots": 2}
            async with http.post(f"{base}/v1/replicas/register", json={"host": "h", "replicas": [replica]}) as r:
                assert r.status == 200, await seen.take(r)
            headers = {"Authorization": f"Bearer {CANARY}", "X-Api-Key": CANARY, "X-Correlation-Id": CANARY}
            body = {"prompt": f"remember {CANARY}", "max_tokens": 5, "seed": 1}
            async with http.post(f"{base}/v1/tasks", json=body, headers=headers) as r:
                text = await seen.take(r)
                assert r.status == 202, text
                task_id = json.loads(text)["task_id"]
            async with http.get(f"{base}/v1/tasks/{task_id}/stream", headers=headers) as r:
                events = parse_sse(await r.text())  # the caller's own output: not searched
            tokens = [e.data["t"] for e in events if e.event == "token"]
            assert CANARY in "".join(tokens) and events[-1].event == "end"
            # the fetch tool: the canary in the query and the path, and in what the upstream answers
            for url in (f"http://127.0.0.1:{upstream_port}/p?q={CANARY}", f"http://127.0.0.1:{upstream_port}/{CANARY}"):
                async with http.post(f"{base}/v1/tools/fetch", json={"url": url}) as r:
                    assert r.status == 200, await seen.take(r)
                    await seen.take(r)
            async with http.post(f"{base}/v1/tools/fetch", json={"url": f"http://evil.test/{CANARY}"}) as r:
                assert r.status == 403
                await seen.take(r)
            # error paths
            async with http.post(f"{base}/v1/tasks", json={"prompt": "x", CANARY: 1}) as r:
                assert r.status == 400
                await seen.take(r)
            async with http.get(f"{base}/v1/{CANARY}") as r:
                assert r.status == 404
                await seen.take(r)
            async with http.get(f"{base}/v1/sessions/{CANARY}") as r:
                assert r.status == 404
                await seen.take(r)
            # wait for the task record, then read every artifact back through the API
            artifacts: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not any("task-record" in a["tags"] for a in artifacts):
                    async with http.get(f"{base}/v1/artifacts") as r:
                        artifacts = (json.loads(await seen.take(r)))["artifacts"]
                    await asyncio.sleep(0.05)
            for item in artifacts:
                async with http.get(f"{base}/v1/artifacts/{item['id']}") as r:
                    await seen.take(r)
    finally:
        logging.getLogger().removeHandler(handler)
        stop_redacting_records()
        await runner.cleanup()
        await engine.cleanup()
        await upstream.cleanup()
    record = next(json.loads(t.split("\n", 1)[1]) for t in seen.texts if '"task-record"' in t and '"transcript"' in t)
    assert "[REDACTED]" in record["content"]["transcript"]  # the model's output, stored redacted
    assert len(seen.texts) >= 10
    for text in seen.texts:
        assert CANARY not in text, text[:400]
    logs = stream.getvalue()
    assert logs and CANARY not in logs
    assert CANARY not in caplog.text
    on_disk = [p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert on_disk and not any(CANARY.encode() in blob for blob in on_disk)
    for piece in SPLIT[1:]:  # nor the canary's pieces: the tokens are redacted as one text at rest
        assert not any(piece.encode() in blob for blob in on_disk), piece
    assert Redactor(literals=[CANARY]).clean("".join(tokens)) != "".join(tokens)
