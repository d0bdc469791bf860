"""Every task leaves a record artifact, success or failure (prompt redacted, transcript kept)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp

from llama_orch.engines.mock import MockFaults, MockSettings
from tests.conftest import Serve, fast_config, parse_sse, read_stream
from tests.server.test_app import submit


async def records_of(http: aiohttp.ClientSession, base: str, task_id: str) -> list[dict[str, Any]]:
    """The task's record artifacts; written off the request path, so poll briefly (bounded)."""
    for _ in range(100):
        async with http.get(f"{base}/v1/artifacts", params={"tag": "task-record", "task_id": task_id}) as resp:
            assert resp.status == 200, await resp.text()
            listing = await resp.json()
        if listing["artifacts"]:
            records = []
            for ref in listing["artifacts"]:
                async with http.get(f"{base}/v1/artifacts/{ref['id']}") as resp:
                    records.append(await resp.json())
            return records
        await asyncio.sleep(0.05)
    raise AssertionError(f"no record artifact for task {task_id} after 5 s")


async def test_successful_task_leaves_a_redacted_record(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = fast_config()
    config.data_dir = str(tmp_path)
    base = await serve(config)
    prompt = "my api key is sk-live-1234567890"
    admitted = await submit(http, base, prompt=prompt, max_tokens=5, seed=2**60, session_id="rec")
    events = await read_stream(http, base, admitted["task_id"])
    (record,) = await records_of(http, base, admitted["task_id"])
    assert record["kind"] == "trace"
    assert record["session_id"] == "rec"
    assert "state:done" in record["tags"]
    content = record["content"]
    assert prompt not in str(content)
    assert content["request"]["prompt_redacted"] == {
        "sha256": hashlib.sha256(prompt.encode()).hexdigest(),
        "chars": len(prompt),
    }
    assert content["seed"] == str(2**60)  # beyond canonical JSON's integers: kept exactly, as text
    assert content["sampler_profile"] == "llorch/sampler@1"
    assert (content["engine"], content["engine_version"], content["model_ref"]) == ("mock", "mock-1", "mock:tiny")
    assert content["metrics"]["tokens_out"] == 5
    transcript = parse_sse(content["transcript"])
    assert [(e.id, e.event) for e in transcript] == [(e.id, e.event) for e in events]


async def test_failed_and_cancelled_tasks_leave_records(serve: Serve, http: aiohttp.ClientSession) -> None:
    faults = MockFaults(trigger="[boom]", error_after_tokens=2)
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=20, first_token_ms=1, slots=1, faults=faults)))
    failed = await submit(http, base, prompt="[boom]", max_tokens=10)
    await read_stream(http, base, failed["task_id"])
    head = await submit(http, base, max_tokens=50)
    queued = await submit(http, base, max_tokens=5)
    async with http.post(f"{base}/v1/tasks/{queued['task_id']}/cancel") as resp:
        assert resp.status == 204
    async with http.post(f"{base}/v1/tasks/{head['task_id']}/cancel") as resp:
        assert resp.status == 204
    (rec_failed,) = await records_of(http, base, failed["task_id"])
    assert rec_failed["content"]["state"] == "failed"
    assert "ENGINE_ERROR" in rec_failed["content"]["transcript"]
    (rec_queued,) = await records_of(http, base, queued["task_id"])
    assert rec_queued["content"]["state"] == "cancelled"
    assert rec_queued["content"]["replica"] is None
    (rec_head,) = await records_of(http, base, head["task_id"])
    assert rec_head["content"]["state"] == "cancelled"


async def test_a_record_keeps_its_token_counts(serve: Serve, http: aiohttp.ClientSession) -> None:
    # "max_tokens": 2000 has the shape of "token: <value>": the redactor once hid it (and broke the
    # record's JSON text, so the record went through a slower redaction of the whole value).
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=20, first_token_ms=1, slots=1)))
    task = await submit(http, base, max_tokens=2000)
    async with http.post(f"{base}/v1/tasks/{task['task_id']}/cancel") as resp:
        assert resp.status == 204
    (record,) = await records_of(http, base, task["task_id"])
    assert record["content"]["request"]["max_tokens"] == 2000
