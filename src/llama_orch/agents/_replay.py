"""``llama-orch replay ARTIFACT``: re-issue a recorded model call and compare it token by token.

The artifact is a loop model call's prompt or response record (see :mod:`._loop_model`). The call
is issued again with what was recorded — prompt, ``max_tokens``, seed, sampler profile, pool,
determinism — and its tokens are compared with the recorded ones: identical, or the index of the
first differing token with both texts. What could explain a difference is reported beside it:
the engine version or the model (and its catalog digest, from orchestratord's task records) now
differ from then, the recorded prompt had secrets redacted (so it is not the prompt that was
sent), or the call ran ``best_effort`` rather than ``strict``.

Records are read from orchestratord, or from a run's local journal when they never reached it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_orch.client import AsyncClient, LlamaOrchError, NotFoundError
from llama_orch_api import EndEvent, TokenEvent

__all__ = ["ReplayError", "ReplayReport", "replay"]


class ReplayError(ValueError):
    """The artifact is not a recorded model call (or cannot be found)."""


@dataclass
class ReplayReport:
    artifact: str
    prompt_artifact: str
    response_artifact: str | None
    replay_task_id: str
    identical: bool
    tokens_recorded: int
    tokens_now: int
    first_difference: int | None = None
    recorded_token: str | None = None
    replayed_token: str | None = None
    recorded: dict[str, Any] = field(default_factory=dict)
    now: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact, "prompt_artifact": self.prompt_artifact,
            "response_artifact": self.response_artifact, "replay_task_id": self.replay_task_id,
            "identical": self.identical, "tokens_recorded": self.tokens_recorded, "tokens_now": self.tokens_now,
            "first_difference": self.first_difference, "recorded_token": self.recorded_token,
            "replayed_token": self.replayed_token, "recorded": self.recorded, "now": self.now, "notes": self.notes,
        }  # fmt: skip


@dataclass(frozen=True)
class _Record:
    id: str
    parent: str | None
    content: Any
    task_id: str | None


async def _get(client: AsyncClient, artifact_id: str, journals: Sequence[Path]) -> _Record:
    wanted = artifact_id if artifact_id.startswith("sha256:") else f"sha256:{artifact_id}"
    try:
        art = await client.get_artifact(wanted)
        return _Record(art.id, art.parent, art.content, art.task_id)
    except NotFoundError:
        pass
    name = wanted.removeprefix("sha256:") + ".json"
    for journal in journals:
        path = journal / "pending" / name
        if path.is_file():
            entry = json.loads(path.read_text())
            request = entry["request"]
            return _Record(entry["id"], request.get("parent"), request.get("content"), request.get("task_id"))
    raise ReplayError(f"no artifact {wanted} on the server or in this repository's run journals")


async def _response_of(client: AsyncClient, prompt: _Record, journals: Sequence[Path]) -> _Record | None:
    try:
        page = await client.list_artifacts(parent=prompt.id, tags=["agent:response"], limit=5)
        for ref in page.artifacts:
            return await _get(client, ref.id, journals)
    except LlamaOrchError:
        pass
    for journal in journals:
        for path in (journal / "pending").glob("*.json"):
            entry = json.loads(path.read_text())
            request = entry["request"]
            if request.get("parent") == prompt.id and "agent:response" in request.get("tags", []):
                return _Record(entry["id"], prompt.id, request.get("content"), request.get("task_id"))
    return None


async def _task_record(client: AsyncClient, task_id: str | None, *, wait_s: float = 0.0) -> dict[str, Any] | None:
    """orchestratord's own record of a task (engine, version, model digest); written shortly after it ends."""
    if task_id is None:
        return None
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            page = await client.list_artifacts(task_id=task_id, tags=["task-record"], limit=1)
            if page.artifacts:
                art = await client.get_artifact(page.artifacts[0].id)
                return art.content if isinstance(art.content, dict) else None
        except LlamaOrchError:
            return None
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(0.1)


def _facts(content: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: content.get(k) for k in ("engine", "engine_version", "model_ref", "pool", "replica")}
    if record:
        for k in ("engine", "engine_version", "model_ref", "model_digest", "replica"):
            if record.get(k) is not None:
                out[k] = record[k]
    return out


async def replay(client: AsyncClient, artifact_id: str, *, journals: Sequence[Path] = ()) -> ReplayReport:
    """Re-issue the call ``artifact_id`` records (see the module docstring)."""
    first = await _get(client, artifact_id, journals)
    content = first.content if isinstance(first.content, dict) else {}
    if "response" in content and first.parent:
        response: _Record | None = first
        prompt = await _get(client, first.parent, journals)
    elif "prompt" in content:
        prompt, response = first, await _response_of(client, first, journals)
    else:
        raise ReplayError(f"{first.id} is not a recorded model call (a loop prompt or response artifact)")
    asked = prompt.content if isinstance(prompt.content, dict) else {}
    if not isinstance(asked.get("prompt"), str) or asked.get("seed") is None:
        raise ReplayError(f"{prompt.id} does not record a prompt with its seed: it cannot be replayed")
    answered = response.content if response is not None and isinstance(response.content, dict) else {}
    recorded_tokens = answered.get("tokens")
    notes: list[str] = []
    if asked.get("redactions"):
        notes.append(f"the recorded prompt had {asked['redactions']} secret(s) redacted: it is not the prompt sent")
    if response is None:
        notes.append("no recorded response to compare with: the replay's tokens are reported alone")
    if asked.get("determinism") != "strict":
        notes.append("the call ran best_effort: identical output is expected only on the same replica and engine")
    task_id = f"replay-{secrets.token_hex(6)}"
    fields: dict[str, Any] = {
        "task_id": task_id, "prompt": asked["prompt"], "max_tokens": int(asked.get("max_tokens") or 128),
        "seed": int(asked["seed"]),
        "sampler_profile_version": asked.get("sampler_profile_version") or "llorch/sampler@1",
        "priority": "interactive", "determinism": asked.get("determinism") or "best_effort",
    }  # fmt: skip
    pool = answered.get("pool") or asked.get("pool")
    if pool:
        fields["pool"] = pool
    if asked.get("model"):
        fields["model_ref"] = asked["model"]
    recorded_tokens_list = recorded_tokens if isinstance(recorded_tokens, list) else None
    # A call the loop stopped itself (its answer was complete) is compared over what it recorded.
    cap = len(recorded_tokens_list) if answered.get("cut_at") is not None and recorded_tokens_list else None
    if cap is not None:
        notes.append(f"the recorded call was stopped by the loop after {cap} tokens: compared over those")
    tokens: list[str] = []
    async with await client.submit(**fields) as task:
        try:
            async for event in task.astream():
                if isinstance(event.data, TokenEvent):
                    tokens.append(event.data.t)
                    if cap is not None and len(tokens) >= cap:
                        await client.cancel(task_id, timeout=5)
                        break
                elif isinstance(event.data, EndEvent):
                    break
        except asyncio.CancelledError:
            await client.cancel(task_id, timeout=5)
            raise
    recorded = _facts(answered, await _task_record(client, response.task_id if response else None))
    now = _facts({"pool": task.admission.pool}, await _task_record(client, task_id, wait_s=3.0))
    for key in ("engine_version", "model_ref", "model_digest"):
        if recorded.get(key) is not None and now.get(key) is not None and recorded[key] != now[key]:
            notes.append(f"{key} changed: {recorded[key]} then, {now[key]} now")
    if recorded.get("replica") and now.get("replica") and recorded["replica"] != now["replica"]:
        notes.append(f"ran on replica {now['replica']}, recorded on {recorded['replica']}")
    recorded.update(seed=asked.get("seed"), sampler_profile_version=asked.get("sampler_profile_version"),
                    max_tokens=asked.get("max_tokens"))  # fmt: skip
    expected: list[str] | None = list(recorded_tokens) if isinstance(recorded_tokens, list) else None
    if expected is None and response is not None and isinstance(answered.get("response"), str):
        notes.append("the recorded response has no token list (it was redacted): compared as text")
        same = "".join(tokens) == answered["response"]
        return ReplayReport(first.id, prompt.id, response.id, task_id, same, int(answered.get("tokens_out") or 0),
                            len(tokens), recorded=recorded, now=now, notes=notes)  # fmt: skip
    expected = expected or []
    diff = next((i for i, (a, b) in enumerate(zip(expected, tokens, strict=False)) if a != b), None)
    if diff is None and len(expected) != len(tokens) and response is not None:
        diff = min(len(expected), len(tokens))
    report = ReplayReport(
        first.id, prompt.id, response.id if response else None, task_id, response is not None and diff is None,
        len(expected), len(tokens), recorded=recorded, now=now, notes=notes,
    )  # fmt: skip
    if diff is not None:
        report.first_difference = diff
        report.recorded_token = expected[diff] if diff < len(expected) else None
        report.replayed_token = tokens[diff] if diff < len(tokens) else None
    return report
