"""Agent artifacts against a real orchestratord on loopback, and the local journal when it is unreachable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llama_orch.agents._artifacts_client import AgentArtifacts
from llama_orch.agents._gates import GateSpec, run_gate
from llama_orch.agents._merge import MergeQueue
from llama_orch.agents._redact import redact_secrets
from llama_orch.agents._trailers import read_trailers
from llama_orch.agents._workspace import WorkspaceManager
from llama_orch.artifacts import artifact_id
from llama_orch.client import AsyncClient, RetryPolicy
from tests.conftest import Serve, fast_config, free_port

from ._gitrepo import check_gate, make_repo

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
NO_RETRY = RetryPolicy(max_attempts=1)


async def _server(serve: Serve, data_dir: Path) -> str:
    config = fast_config()
    config.data_dir = str(data_dir)
    return await serve(config)


async def test_the_whole_chain_lands_at_the_orchestrator_with_lineage(serve: Serve, tmp_path: Path) -> None:
    base = await _server(serve, tmp_path / "data")
    async with AsyncClient(base) as client:
        record = AgentArtifacts(client, tmp_path / "journal", session_id="loop-1")
        prompt = await record.prompt(
            f"Write the code. OPENAI_API_KEY={SECRET}\nAuthorization: Bearer abcdefgh12345678",
            role="coder",
            model="gemma3-270m",
            seed=7,
            sampler_profile_version="v1",
        )
        response = await record.response("Here is the plan and the diff.", parent=prompt.id)
        plan = await record.plan({"steps": ["edit calc.py", "run tests"]}, parent=response.id)
        edits = await record.edit_set("--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n", parent=plan.id)
        gate = await run_gate(GateSpec(name="quick", argv=(sys.executable, "-c", "print('ok')")), tmp_path)
        result = await record.gate_result(gate, parent=edits.id)
        assert {a.where for a in (prompt, response, plan, edits, result)} == {"remote"}
        assert record.pending() == []

        stored = await client.get_artifact(prompt.id)
        assert SECRET not in str(stored.content) and "abcdefgh12345678" not in str(stored.content)
        assert isinstance(stored.content, dict)
        assert stored.content["redactions"] == 2 and stored.content["seed"] == 7 and stored.content["role"] == "coder"
        assert "agent:prompt" in stored.tags and "role:coder" in stored.tags and stored.session_id == "loop-1"
        # Ids are the content address anyone can recompute.
        assert prompt.id == artifact_id("trace", stored.content, None)
        gate_stored = await client.get_artifact(result.id)
        assert gate_stored.kind == "test-result" and isinstance(gate_stored.content, dict)
        assert gate_stored.content["status"] == "pass" and gate_stored.content["gate"] == "quick"
        lineage = await client.artifact_lineage(result.id)
        assert [a.id for a in lineage.ancestors] == [edits.id, plan.id, response.id, prompt.id]
        assert (await client.get_artifact(edits.id)).media_type == "text/x-diff"


async def test_merge_queue_records_gate_results_and_its_decision(serve: Serve, tmp_path: Path) -> None:
    base = await _server(serve, tmp_path / "data")
    repo = make_repo(tmp_path, gates=check_gate())
    async with AsyncClient(base) as client, WorkspaceManager(repo) as manager:
        record = AgentArtifacts(client, tmp_path / "journal")
        edits = await record.edit_set({"files": ["feature.txt"]}, parent=None)
        ws = await manager.create("a1")
        (ws.path / "feature.txt").write_text("feature\n")
        await ws.commit("feature")
        decision = await MergeQueue(manager, artifacts=record, run_id="r-1").submit(ws.branch, parent_artifact=edits.id)
        assert decision.outcome == "merged" and decision.artifact_id is not None
        (gate_id,) = decision.gate_artifact_ids
        assert (await client.get_artifact(gate_id)).parent == edits.id
        stored = await client.get_artifact(decision.artifact_id)
        assert stored.kind == "summary" and stored.parent == edits.id
        assert isinstance(stored.content, dict)
        assert stored.content["outcome"] == "merged" and stored.content["gate_artifact_ids"] == [gate_id]
        assert "outcome:merged" in stored.tags and "branch:llorch/agent/a1" in stored.tags
        # The merge commit cites the gate result it was decided on.
        assert ("Artifact-Id", gate_id) in await read_trailers(manager.git, decision.merge_commit or "")


async def test_unreachable_backend_falls_back_locally_then_sync_uploads(serve: Serve, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with AsyncClient(dead, retry=NO_RETRY) as down:
        record = AgentArtifacts(down, journal, session_id="s-1")
        prompt = await record.prompt(f"key {SECRET}", role="planner", seed=1)
        response = await record.response("answer", parent=prompt.id)
        plan = await record.plan({"steps": [1, 2]}, parent=response.id)
        again = await record.plan({"steps": [1, 2]}, parent=response.id)  # same content, same artifact
        assert {a.where for a in (prompt, response, plan)} == {"local"}
        assert again.id == plan.id
        assert record.pending() == [prompt.id, response.id, plan.id]
        report = await record.sync()
        assert report.uploaded == [] and report.pending == 3 and prompt.id in report.failed
        assert SECRET not in "".join(p.read_text() for p in (journal / "pending").iterdir())

    base = await _server(serve, tmp_path / "data")
    async with AsyncClient(base) as up:
        record.client = up
        # While the parent is only in the journal, its child stays there too (sync keeps lineage whole).
        edits = await record.edit_set("diff", parent=plan.id)
        assert edits.where == "local"
        report = await record.sync()
        assert report.uploaded == [prompt.id, response.id, plan.id, edits.id]
        assert report.failed == {} and report.pending == 0 and record.pending() == []
        lineage = await up.artifact_lineage(edits.id)
        assert [a.id for a in lineage.ancestors] == [plan.id, response.id, prompt.id]
        assert (await up.get_artifact(prompt.id)).session_id == "s-1"
        assert (await record.sync()).uploaded == []  # nothing left; syncing again is harmless
        # Uploading the same content again is idempotent thanks to content addressing.
        again_remote = await record.plan({"steps": [1, 2]}, parent=response.id)
        assert (again_remote.id, again_remote.where) == (plan.id, "remote")
        # And now the backend is back, new artifacts go straight to it.
        assert (await record.plan({"steps": [3]}, parent=None)).where == "remote"


async def test_without_a_backend_everything_is_journaled(tmp_path: Path) -> None:
    record = AgentArtifacts(None, tmp_path / "journal")
    first = await record.plan("# plan", parent=None)
    assert first.where == "local" and first.id == artifact_id("plan", "# plan", None)
    report = await record.sync()
    assert report.pending == 1 and report.uploaded == []
    with pytest.raises(ValueError, match="invalid artifact"):
        await record.put("plan", "x", tags=["no spaces allowed"])
    with pytest.raises(ValueError, match="not a valid ArtifactKind"):
        await record.put("not-a-kind", "x")


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("password = hunter22", "hunter22"),
        ("export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("aws AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", "MIIB"),
        ("https://user:pa55word@example.com/x", "pa55word"),
        ('{"api_key": "abcd1234"}', "abcd1234"),
    ],
)
def test_redaction_hides_common_secrets(text: str, hidden: str) -> None:
    redacted, count = redact_secrets(text)
    assert hidden not in redacted and count >= 1 and "[REDACTED]" in redacted


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "the tokenizer = bpe; max_tokens = 16; see https://example.com/docs"
    assert redact_secrets(text) == (text, 0)
