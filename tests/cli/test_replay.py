"""Replay of recorded model calls against a real orchestratord: identical, or the first differing token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llama_orch.agents import AgentArtifacts, ReplayError, RunBudget, replay
from llama_orch.agents._loop_model import CallContext, LoopModel
from llama_orch.agents._modelio import CompletionRequest
from llama_orch.cli import ExitCode
from llama_orch.client import AsyncClient
from llama_orch.engines.mock import MockSettings
from tests.cli.conftest import Cli, LiveServer
from tests.conftest import fast_config


def config(tmp_path: Path) -> object:
    script = tmp_path / "script.yaml"
    # The same prompt gets a different answer the second time: a replay of it must say where it differs.
    script.write_text('rules:\n  - match: "changes"\n    answer: ["one two three", "one TWO three"]\n')
    return fast_config(mock=MockSettings(tokens_per_s=None, first_token_ms=1, slots=2, script=str(script)))


async def record(base: str, tmp_path: Path, prompt: str, agent: str) -> tuple[str, str]:
    async with AsyncClient(base) as client:
        caps = await client.capabilities()
        model = LoopModel(client, AgentArtifacts(client, tmp_path / "journal"), RunBudget(), caps, run_id="r",
                          session_id="s-replay", record=lambda e, **f: None)  # fmt: skip
        done = await model.completion(CallContext(agent, "code:X-0001", "coder", None))(
            CompletionRequest(prompt, 40, seed=11, sampler_profile_version="llorch/sampler@1")
        )
        return model.artifacts_of[done.task_id]


def test_replay_from_the_cli(cli: Cli, live_server: LiveServer, tmp_path: Path) -> None:
    base = live_server(config(tmp_path))  # type: ignore[arg-type]
    prompt_id, response_id = asyncio.run(record(base, tmp_path, "a steady prompt", "a1"))
    same = cli(base, "replay", response_id, "--json")
    assert same.exit_code == 0, same.stderr
    report = json.loads(same.stdout)
    assert report["identical"] and report["tokens_now"] == report["tokens_recorded"] == 40
    assert report["prompt_artifact"] == prompt_id and report["recorded"]["seed"] == 11
    assert report["recorded"]["engine"] == "mock" and report["recorded"]["engine_version"] == "mock-1"
    assert cli(base, "replay", prompt_id).exit_code == 0  # the prompt's id works too
    _, changed = asyncio.run(record(base, tmp_path, "this changes", "a2"))
    differs = cli(base, "replay", changed)
    assert differs.exit_code == ExitCode.DIFFERENT
    assert "differs at token 1: recorded ' two', now ' TWO'" in differs.stdout
    missing = cli(base, "replay", "sha256:" + "0" * 64)
    assert missing.exit_code == ExitCode.NOT_FOUND


async def test_what_cannot_be_replayed(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = await serve(config(tmp_path))
    async with AsyncClient(base) as client:
        other = await client.put_artifact(kind="summary", content={"not": "a call"})
        with pytest.raises(ReplayError, match="not a recorded model call"):
            await replay(client, other.id)
        with pytest.raises(ReplayError, match="no artifact"):
            await replay(client, "ab" * 32)
