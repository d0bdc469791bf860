"""Steps for orchestratord's HTTP API: admission, streams, cancel, backpressure, sessions,
catalog, artifacts. They speak plain HTTP (httpx), as any client of the API would."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from behave import given, then, when  # type: ignore[import-untyped]


def _events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", None
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
        if data is not None:
            events.append((name, data))
    return events


def _submit(context: Any, body: dict[str, Any]) -> Any:
    resp = context.http.post("/v1/tasks", json=body)
    context.answer = resp
    context.answers.append(resp)
    if resp.status_code == 202:
        context.task_id = resp.json()["task_id"]
        context.task_ids.append(context.task_id)
    return resp


@given("orchestratord is running")
def step_running(context: Any) -> None:
    assert context.http.get("/healthz").status_code == 200


@when('I submit a task with prompt "{prompt}" and max_tokens {n:d}')
def step_submit(context: Any, prompt: str, n: int) -> None:
    _submit(context, {"prompt": prompt, "max_tokens": n, "seed": 7})


@when('I submit a task with prompt "{prompt}" and max_tokens {n:d} in session "{session}"')
def step_submit_session(context: Any, prompt: str, n: int, session: str) -> None:
    _submit(context, {"prompt": prompt, "max_tokens": n, "seed": 7, "session_id": session})


@when("I submit the task body")
def step_submit_raw(context: Any) -> None:
    resp = context.http.post("/v1/tasks", content=context.text.encode(), headers={"Content-Type": "application/json"})
    context.answer = resp


@when("I submit {count:d} tasks with max_tokens {n:d}")
def step_submit_many(context: Any, count: int, n: int) -> None:
    for i in range(count):
        _submit(context, {"prompt": f"load {i}", "max_tokens": n})


@then("the answer status is {status:d}")
def step_status(context: Any, status: int) -> None:
    assert context.answer.status_code == status, (context.answer.status_code, context.answer.text)


@then('the error code is "{code}"')
def step_code(context: Any, code: str) -> None:
    body = context.answer.json()
    assert body["code"] == code, body
    assert body["message"]


@then("the answer names a queue position and a predicted start")
def step_admission_fields(context: Any) -> None:
    body = context.answer.json()
    assert body["queue_position"] >= 0
    assert body["predicted_start_ms"] >= 0
    assert body["stream_url"] == f"/v1/tasks/{body['task_id']}/stream"


@then("the answer echoes the correlation id")
def step_cid(context: Any) -> None:
    assert context.answer.headers.get("X-Correlation-Id")


@when("I read the task's stream")
def step_read_stream(context: Any) -> None:
    resp = context.http.get(f"/v1/tasks/{context.task_id}/stream")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    context.events = _events(resp.text)


@then('the stream ends with "{event}"')
def step_stream_end(context: Any, event: str) -> None:
    assert context.events[-1][0] == event, context.events[-3:]
    assert [name for name, _ in context.events].count(event) == 1


@then('the stream ends with an error "{code}"')
def step_stream_error(context: Any, code: str) -> None:
    name, data = context.events[-1]
    assert (name, data["code"]) == ("error", code), context.events[-3:]


@then("the stream has {n:d} token events in order")
def step_tokens(context: Any, n: int) -> None:
    tokens = [data for name, data in context.events if name == "token"]
    assert [t["i"] for t in tokens] == list(range(n)), tokens


@then("the stream has no token events")
def step_no_tokens(context: Any) -> None:
    assert not [1 for name, _ in context.events if name == "token"], context.events


@when("I cancel the task")
def step_cancel(context: Any) -> None:
    context.answer = context.http.post(f"/v1/tasks/{context.task_id}/cancel")


@then("at least {n:d} answers were 429 with Retry-After and X-Backoff-Ms")
def step_429(context: Any, n: int) -> None:
    refused = [r for r in context.answers if r.status_code == 429]
    assert len(refused) >= n, [r.status_code for r in context.answers]
    for resp in refused:
        assert int(resp.headers["Retry-After"]) >= 1
        assert int(resp.headers["X-Backoff-Ms"]) >= 1
        body = resp.json()
        assert body["code"] == "ADMISSION_REJECT"
        assert body["retriable"] is True
        assert body["policy_label"]


@when('I get session "{session}"')
def step_get_session(context: Any, session: str) -> None:
    context.answer = context.http.get(f"/v1/sessions/{session}")


@when('I delete session "{session}"')
def step_delete_session(context: Any, session: str) -> None:
    context.answer = context.http.delete(f"/v1/sessions/{session}")


@then("the session has {n:d} turn")
@then("the session has {n:d} turns")
def step_turns(context: Any, n: int) -> None:
    body = context.answer.json()
    assert body["turns"] == n, body
    assert body["ttl_ms_remaining"] > 0


@given('a model file "{name}" on disk')
def step_model_file(context: Any, name: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="llorch-bdd-"))
    context.model_path = folder / name
    context.model_path.write_bytes(b"GGUF" + bytes(range(256)) * 4)


@when('I register catalog model "{model_id}" with its {which} digest')
def step_register(context: Any, model_id: str, which: str) -> None:
    data = context.model_path.read_bytes()
    digest = hashlib.sha256(data if which == "correct" else data + b"x").hexdigest()
    body = {
        "id": model_id,
        "model_ref": f"file:{context.model_path}",
        "source": f"file:{context.model_path}",
        "files": [{"path": str(context.model_path), "sha256": digest, "size_bytes": len(data)}],
    }
    context.answer = context.http.post("/v1/catalog/models", json=body)
    assert context.answer.status_code == 201, context.answer.text
    context.model_id = model_id


@when("I verify the model")
def step_verify(context: Any) -> None:
    context.answer = context.http.post(f"/v1/catalog/models/{context.model_id}/verify")


@then('the verification status is "{status}"')
def step_verify_status(context: Any, status: str) -> None:
    assert context.answer.status_code == 200, context.answer.text
    assert context.answer.json()["status"] == status, context.answer.json()


@when('I store a {kind} artifact "{content}"')
def step_store(context: Any, kind: str, content: str) -> None:
    parent = getattr(context, "artifact_id", None) if kind == "diff" else None
    context.answer = context.http.post("/v1/artifacts", json={"kind": kind, "content": content, "parent": parent})
    if context.answer.status_code in (200, 201):
        context.artifact_ids = [*getattr(context, "artifact_ids", []), context.answer.json()["id"]]
        context.artifact_id = context.answer.json()["id"]


@then("the lineage of the last artifact leads to the first")
def step_lineage(context: Any) -> None:
    resp = context.http.get(f"/v1/artifacts/{context.artifact_ids[-1]}/lineage")
    assert resp.status_code == 200, resp.text
    ancestors = [a["id"] for a in resp.json()["ancestors"]]
    assert ancestors == context.artifact_ids[:-1][::-1], ancestors


@then("both stores gave the same id")
def step_same_id(context: Any) -> None:
    assert len(set(context.artifact_ids)) == 1, context.artifact_ids
