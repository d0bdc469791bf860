"""llama-orch through typer's CliRunner: every command, its --json output, and errors → exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from llama_orch.cli import ExitCode
from llama_orch.engines.mock import MockSettings
from llama_orch_api import (
    AdmissionResponse,
    Artifact,
    ArtifactLineage,
    ArtifactList,
    ArtifactRef,
    Capabilities,
    CatalogModel,
    CatalogModelList,
    EndEvent,
    ErrorEnvelope,
    PoolHealth,
    PoolOperation,
    ReplicaSetList,
    SessionInfo,
    TokenEvent,
    VerifyResult,
)
from tests.cli.conftest import CAPS, Cli, LiveServer, Stub
from tests.conftest import fast_config, free_port

# -- machine output: each --json is the model's JSON ---------------------------------------------


def test_discovery_and_pools_json(cli: Cli, live_server: LiveServer) -> None:
    base = live_server(fast_config())
    assert Capabilities.model_validate(cli(base, "capabilities", "--json").json()).api_version == "0.1.0"
    sets = ReplicaSetList.model_validate(cli(base, "status", "--json").json())
    assert [rs.pool for rs in sets.replicasets] == ["default"]
    watched = cli(base, "status", "--watch", "--count", "2", "--interval", "0.1", "--json").lines()
    assert len(watched) == 2 and all(ReplicaSetList.model_validate(x) for x in watched)
    assert PoolHealth.model_validate(cli(base, "pools", "health", "default", "--json").json()).state == "ready"
    drained = PoolOperation.model_validate(
        cli(base, "pools", "drain", "default", "--deadline-ms", "10", "--json").json()
    )
    assert drained.state == "drained"
    reloaded = PoolOperation.model_validate(cli(base, "pools", "reload", "default", "mock:tiny", "--json").json())
    assert reloaded.state == "ready"
    # The global --json works as well as the command's.
    assert ReplicaSetList.model_validate(cli(base, "--json", "status").json())


def test_submit_json_lines_and_sessions(cli: Cli, live_server: LiveServer) -> None:
    base = live_server(fast_config())
    result = cli(base, "submit", "hello", "--max-tokens", "5", "--seed", "4", "--session", "s1", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.lines()
    assert lines[0]["event"] == "admitted" and AdmissionResponse.model_validate(lines[0]["data"]).session_id == "s1"
    assert [line["id"] for line in lines[1:]] == list(range(1, len(lines)))
    tokens = [TokenEvent.model_validate(line["data"]).t for line in lines if line["event"] == "token"]
    assert len(tokens) == 5 and EndEvent.model_validate(lines[-1]["data"]).tokens_out == 5

    human = cli(base, "submit", "hello", "--max-tokens", "5", "--seed", "4")
    assert human.stdout == "".join(tokens) + ("" if tokens[-1].endswith("\n") else "\n")
    assert "queued on pool default" in human.stderr and "5 tokens" in human.stderr

    session = SessionInfo.model_validate(cli(base, "sessions", "show", "s1", "--json").json())
    assert session.turns == 1 and session.tokens_used == 5
    assert cli(base, "sessions", "rm", "s1", "--json").json() == {"session_id": "s1", "deleted": True}
    assert cli(base, "sessions", "show", "s1").exit_code == ExitCode.NOT_FOUND


def test_submit_reads_the_prompt_from_stdin(cli: Cli, live_server: LiveServer) -> None:
    base = live_server(fast_config())
    piped = cli(base, "submit", "-", "--max-tokens", "3", "--seed", "1", "--json", input="same prompt")
    given = cli(base, "submit", "same prompt", "--max-tokens", "3", "--seed", "1", "--json")
    texts = [[x["data"]["t"] for x in r.lines() if x["event"] == "token"] for r in (piped, given)]
    assert texts[0] == texts[1] and len(texts[0]) == 3


def test_artifacts(cli: Cli, live_server: LiveServer, tmp_path: Path) -> None:
    base = live_server(fast_config())
    plan = tmp_path / "plan.md"
    plan.write_text("# Plan\n")
    root = ArtifactRef.model_validate(cli(base, "artifacts", "put", str(plan), "--kind", "plan", "--tag", "l:1",
                                          "--json").json())  # fmt: skip
    child_out = cli(base, "artifacts", "put", "--kind", "trace", "--json-content", "--parent", root.id, "--json",
                    input='{"b": 1, "a": 2}')  # fmt: skip
    child = ArtifactRef.model_validate(child_out.json())
    assert child.parent == root.id and child.media_type == "application/json"
    again = cli(base, "artifacts", "put", str(plan), "--kind", "plan", "--tag", "l:2")
    assert again.stdout.startswith(f"already stored (tags merged) {root.id}")
    assert Artifact.model_validate(cli(base, "artifacts", "get", child.id, "--json").json()).content == {"a": 2, "b": 1}
    assert cli(base, "artifacts", "get", root.id).stdout == "# Plan\n"
    out = tmp_path / "copy.json"
    assert cli(base, "artifacts", "get", child.id, "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == {"a": 2, "b": 1}
    listed = ArtifactList.model_validate(cli(base, "artifacts", "ls", "--tag", "l:1", "--json").json())
    assert [a.id for a in listed.artifacts] == [root.id] and listed.artifacts[0].tags == ["l:1", "l:2"]
    lineage = ArtifactLineage.model_validate(cli(base, "artifacts", "lineage", child.id, "--json").json())
    assert lineage.root == root.id
    assert root.id in cli(base, "artifacts", "lineage", child.id).stdout
    assert root.id in cli(base, "artifacts", "ls").stdout


def test_catalog(cli: Cli, live_server: LiveServer, tmp_path: Path) -> None:
    base = live_server(fast_config())
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(28))
    add = ["add", "m1", "--model-ref", "mock:m1", "--source", f"file:{model}", "--file", str(model), "--tag", "small"]
    added = CatalogModel.model_validate(cli(base, "catalog", *add, "--json").json())
    assert added.files[0].sha256 == hashlib.sha256(model.read_bytes()).hexdigest() and added.tags == ["small"]
    listed = CatalogModelList.model_validate(cli(base, "catalog", "show", "--json").json())
    assert [m.id for m in listed.models] == ["m1"]
    assert "mock:m1" in cli(base, "catalog", "show").stdout
    assert VerifyResult.model_validate(cli(base, "catalog", "verify", "m1", "--json").json()).status.value == "verified"
    retired = CatalogModel.model_validate(cli(base, "catalog", "retire", "m1", "--reason", "old", "--json").json())
    assert retired.state.value == "Retired" and retired.state_reason == "old"
    assert CatalogModel.model_validate(cli(base, "catalog", "activate", "m1", "--json").json()).state.value == "Active"
    # A file that no longer matches its digest: the verification fails, and says so with exit 8.
    model.write_bytes(b"GGUF" + bytes(27) + b"x")
    failed = cli(base, "catalog", "verify", "m1")
    assert failed.exit_code == ExitCode.REFUSED and "failed" in failed.stdout and "failed verification" in failed.stderr
    spec = {"id": "m2", "model_ref": "mock:m2", "source": f"file:{model}",
            "files": [{"path": str(model), "sha256": "0" * 64, "size_bytes": 32}]}  # fmt: skip
    from_json = cli(base, "catalog", "add", "--from-json", "-", "--json", input=json.dumps(spec))
    assert CatalogModel.model_validate(from_json.json()).id == "m2"
    assert cli(base, "catalog", "rm", "m2", "--json").json() == {"id": "m2", "deleted": True}
    assert cli(base, "catalog", "show", "m2").exit_code == ExitCode.NOT_FOUND


# -- failures: a clear message, a hint, the exit code of its class, never a traceback ------------


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["submit", "x", "--pool", "nope"], ExitCode.USAGE, "UNKNOWN_POOL"),
        (["submit", "x", "--max-tokens", "99999"], ExitCode.USAGE, "MAX_TOKENS_EXCEEDED"),
        (["submit", "x", "--task-id", "has space"], ExitCode.USAGE, "task_id"),
        (["submit", "x", "--sampler-profile", "nope@9"], ExitCode.USAGE, "INVALID_PARAMS"),
        (["submit"], ExitCode.USAGE, "Missing argument"),
        (["submit", "x", "--max-tokens", "many"], ExitCode.USAGE, "--max-tokens"),
        (["submit", "x", "--priority", "urgent"], ExitCode.USAGE, "--priority"),
        (["sessions", "show", "nobody"], ExitCode.NOT_FOUND, "NOT_FOUND"),
        (["pools", "health", "nope"], ExitCode.NOT_FOUND, "NOT_FOUND"),
        (["artifacts", "get", "not-an-id"], ExitCode.USAGE, "INVALID_PARAMS"),
        (["artifacts", "put", "/no/such/file.txt"], ExitCode.USAGE, "No such file"),
        (["artifacts", "put", "--json-content"], ExitCode.USAGE, "not JSON"),
        (["catalog", "add", "m"], ExitCode.USAGE, "missing --model-ref"),
        (["catalog", "verify", "ghost"], ExitCode.NOT_FOUND, "NOT_FOUND"),
        (["no-such-command"], ExitCode.USAGE, "No such command"),
    ],
)
def test_errors_map_to_exit_codes(
    cli: Cli, live_server: LiveServer, args: list[str], code: ExitCode, says: str
) -> None:
    base = live_server(fast_config(max_tokens=100))
    result = cli(base, *args, input="{not json")
    assert result.exit_code == code, result.stderr
    assert says in result.stderr


def test_error_json_on_stderr(cli: Cli, live_server: LiveServer) -> None:
    base = live_server(fast_config())
    result = cli(base, "--correlation-id", "cli-test.1", "submit", "x", "--pool", "nope", "--json")
    assert result.exit_code == ExitCode.USAGE and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert ErrorEnvelope.model_validate(error).code == "UNKNOWN_POOL"
    assert error["exit_code"] == 2 and error["status"] == 400 and error["correlation_id"] == "cli-test.1"
    assert error["hint"]


def test_cannot_connect(cli: Cli) -> None:
    result = cli(f"http://127.0.0.1:{free_port()}", "status")
    assert result.exit_code == ExitCode.CONNECT
    assert "cannot connect" in result.stderr and "llama-orch serve" in result.stderr


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "says"),
    [
        (429, {"code": "ADMISSION_REJECT", "message": "full", "retriable": True, "retry_after_ms": 1,
               "policy_label": "queue-full:reject"}, {"X-Backoff-Ms": "1"}, ExitCode.BUSY, "ADMISSION_REJECT"),
        (503, {"code": "POOL_DRAINING", "message": "draining", "retriable": True}, {"Retry-After": "0"},
         ExitCode.BUSY, "POOL_DRAINING"),
        (500, {"code": "INTERNAL", "message": "boom", "retriable": False}, {}, ExitCode.SERVER, "INTERNAL"),
        (402, {"code": "BUDGET_EXCEEDED", "message": "spent", "retriable": False}, {}, ExitCode.REFUSED, "budget"),
        (409, {"code": "CONFLICT", "message": "busy", "retriable": False}, {}, ExitCode.REFUSED, "CONFLICT"),
        (502, b"<html>bad gateway</html>", {}, ExitCode.SERVER, "orchestratord"),
        (418, {"code": "TEAPOT", "message": "newer server", "retriable": False}, {}, ExitCode.USAGE, "newer"),
    ],
)  # fmt: skip
def test_server_answers_map_to_exit_codes(
    cli: Cli, stub: Stub, status: int, body: object, headers: dict[str, str], code: ExitCode, says: str
) -> None:
    stub.answer("GET", "/v1/replicasets", status, body, headers)
    result = cli(stub.url, "status")
    assert result.exit_code == code, result.stderr
    assert says in result.stderr


def test_retriable_answers_are_retried_before_giving_up(cli: Cli, stub: Stub) -> None:
    stub.answer("GET", "/v1/replicasets", 429, {"code": "ADMISSION_REJECT", "message": "full", "retriable": True},
                {"X-Backoff-Ms": "1"})  # fmt: skip
    assert cli(stub.url, "status").exit_code == ExitCode.BUSY
    assert sum(1 for r in stub.requests if r[1] == "/v1/replicasets") == 5  # the SDK's default attempts


def test_incompatible_api_version(cli: Cli, stub: Stub) -> None:
    stub.answer("GET", "/v1/capabilities", 200, {**CAPS, "api_version": "0.9.0"})
    result = cli(stub.url, "status")
    assert result.exit_code == ExitCode.INCOMPATIBLE
    assert "0.9.0" in result.stderr and ">=0.1,<0.2" in result.stderr
    assert [r[1] for r in stub.requests] == ["/v1/capabilities"]


def test_token_and_environment(cli: Cli, stub: Stub) -> None:
    stub.answer("GET", "/v1/replicasets", 200, {"replicasets": []})
    assert cli(None, "status", env={"LLORCH_BASE_URL": stub.url, "LLORCH_TOKEN": "s3cret"}).exit_code == 0
    assert cli(stub.url, "--token", "other", "status").exit_code == 0
    tokens = [r[2].get("Authorization") for r in stub.requests if r[1] == "/v1/replicasets"]
    assert tokens == ["Bearer s3cret", "Bearer other"]


def test_the_cli_module_surface() -> None:
    import llama_orch.cli as cli_module

    assert cli_module.__all__ == ["ExitCode", "app", "main"]
    assert {int(code) for code in ExitCode} == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 130}
    assert all(str(int(code)) in (cli_module._errors.__doc__ or "") for code in ExitCode)


def test_version_and_help(cli: Cli) -> None:
    assert ">=0.1,<0.2" in cli(None, "--version").stdout
    helped = cli(None, "--help")
    assert helped.exit_code == 0
    for command in (
        "serve",
        "status",
        "submit",
        "sessions",
        "catalog",
        "pools",
        "artifacts",
        "capabilities",
        "plan",
        "contract",
        "tests",
        "impl",
        "loop",
        "trace",
        "replay",
    ):
        assert command in helped.stdout


def test_a_watch_of_a_busy_pool_renders(cli: Cli, live_server: LiveServer) -> None:
    base = live_server(fast_config(mock=MockSettings(tokens_per_s=5, first_token_ms=1, slots=1)))
    cli(base, "submit", "x", "--max-tokens", "1")
    result = cli(base, "status", "--watch", "--count", "1", "--interval", "0.1")
    assert result.exit_code == 0 and "default" in result.stdout and "Ctrl-C" in result.stdout
