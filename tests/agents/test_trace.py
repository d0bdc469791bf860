"""Traceability on a real repository: a temp git repo with specs, OpenAPI/JSON Schema/Pact contracts,
pytest and Gherkin tests, and commits whose trailers cite requirement ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from llama_orch.agents import GitLogError, scan_commits, scan_python_test, trace_repository

SPEC = """\
# Auth

- [AUTH-0001] The service MUST reject expired tokens.
- [AUTH-0002] The service SHOULD log rejections.
- [AUTH-0003] Clients MAY cache tokens.
- [AUTH-0004] Tokens MUST be signed.

```
- [AUTH-0999] fenced: not a requirement, so citing it is citing an unknown id
```
"""

OPENAPI = """\
openapi: 3.1.0
info: {title: auth, version: 1.0.0}
paths:
  /v1/token:
    x-req-id: AUTH-0004
    post:
      operationId: createToken
      x-req-id: [AUTH-0001, AUTH-0004]
      responses:
        "401": {description: expired}
    get:
      responses:
        "200": {description: ok}
  /v1/keys:
    get:
      x-req-id: "AUTH-0777"
      responses:
        "200": {description: ok}
components:
  schemas:
    Token:
      type: object
      x-req-id: AUTH-0004
      properties:
        exp:
          type: integer
          x-req-id: AUTH-0001
"""

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"cache_ttl": {"type": "integer", "x-req-id": "AUTH-0003"}},
    "x-req-id": "not an id",
}

PACT = {
    "consumer": {"name": "cli"},
    "provider": {"name": "auth"},
    "interactions": [
        {"description": "an expired token is rejected (AUTH-0001)", "providerState": "a token expired",
         "request": {"method": "GET", "path": "/v1/me"}, "response": {"status": 401}},
        {"description": "a signed token is accepted", "providerStates": [{"name": "keys exist for AUTH-0004"}],
         "request": {"method": "GET", "path": "/v1/me"}, "response": {"status": 200}},
        {"description": "no requirement here", "request": {"method": "GET", "path": "/"},
         "response": {"status": 200}},
    ],
    "metadata": {"pactSpecification": {"version": "3.0.0"}},
}  # fmt: skip

TESTS = """\
import pytest
from pytest import mark

pytestmark = [pytest.mark.slow, pytest.mark.req("AUTH-0002")]


def test_auth_0001_rejects_expired_tokens():
    pass


@mark.req("AUTH-0004", "AUTH-0404")
async def test_signature_checked():
    pass


def helper_auth_0003():
    pass


class TestAuth0003Cache:
    pytestmark = pytest.mark.requirement("AUTH-0003")

    def test_cache(self):
        pass


def test_rejects_auth_0555_and_auth_0001():
    pass
"""

FEATURE = """\
@AUTH-0001 @smoke
Feature: Token expiry
  # @AUTH-0003 in a comment is not a tag

  @AUTH-0002
  Scenario: rejection is logged
    Given a token that expired
    \"\"\"
    @AUTH-0004 inside a docstring is not a tag
    \"\"\"
    Then the log has a line

  Scenario Outline: untagged
    Given <n>
"""


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    (r / "specs").mkdir(parents=True)
    (r / "contracts" / "pacts").mkdir(parents=True)
    (r / "tests" / "features").mkdir(parents=True)
    (r / "specs" / "auth.md").write_text(SPEC)
    (r / "contracts" / "openapi.yaml").write_text(OPENAPI)
    (r / "contracts" / "settings.schema.json").write_text(json.dumps(SCHEMA, indent="\t"))
    (r / "contracts" / "pacts" / "cli-auth.json").write_text(json.dumps(PACT, indent=2))
    (r / "tests" / "test_auth.py").write_text(TESTS)
    (r / "tests" / "features" / "expiry.feature").write_text(FEATURE)
    git(r, "init", "-q", "-b", "main")
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "Spec and contracts\n\nNo trailer here.")
    (r / "src.py").write_text("x = 1\n")
    git(r, "add", "src.py")
    message = "Reject expired tokens\n\nBody text.\n\nRequirement: AUTH-0001\nreq-id: AUTH-0002, AUTH-0888"
    git(r, "commit", "-q", "-m", message)
    (r / "src.py").write_text("x = 2\n")
    git(r, "commit", "-q", "-am", "Sign tokens\n\nRequirement: AUTH-0004\nRun-Id: 42\nRequirement: tbd")
    (r / "src.py").write_text("x = 3\n")
    git(r, "commit", "-q", "-am", "Mentions AUTH-0003 in the subject only\n\nSigned-off-by: t <t@example.com>")
    return r


def cited(entry_list: list) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return [(c.kind, c.source, c.name) for c in entry_list]


def test_trace_index_maps_every_citation_and_names_the_gaps(repo: Path) -> None:
    index = trace_repository(repo)
    r = index.requirements
    assert list(r) == ["AUTH-0001", "AUTH-0002", "AUTH-0003", "AUTH-0004"]
    assert cited(r["AUTH-0001"].contracts) == [
        ("openapi-operation", "contracts/openapi.yaml", "createToken"),
        ("openapi-schema", "contracts/openapi.yaml", "Token/properties/exp"),
        ("pact-interaction", "contracts/pacts/cli-auth.json", "an expired token is rejected (AUTH-0001)"),
    ]
    assert cited(r["AUTH-0004"].contracts) == [
        ("openapi-operation", "contracts/openapi.yaml", "* /v1/token"),
        ("openapi-operation", "contracts/openapi.yaml", "createToken"),
        ("openapi-schema", "contracts/openapi.yaml", "Token"),
        ("pact-interaction", "contracts/pacts/cli-auth.json", "a signed token is accepted"),
    ]
    assert cited(r["AUTH-0003"].contracts) == [
        ("json-schema", "contracts/settings.schema.json", "/properties/cache_ttl")
    ]
    assert r["AUTH-0001"].contracts[0].line == 8

    assert cited(r["AUTH-0001"].tests) == [
        ("gherkin-tag", "tests/features/expiry.feature", "Feature: Token expiry"),
        ("test-name", "tests/test_auth.py", "tests/test_auth.py::test_auth_0001_rejects_expired_tokens"),
        ("test-name", "tests/test_auth.py", "tests/test_auth.py::test_rejects_auth_0555_and_auth_0001"),
    ]
    assert [c.name for c in r["AUTH-0002"].tests] == [
        "Scenario: rejection is logged",
        "tests/test_auth.py::test_auth_0001_rejects_expired_tokens",
        "tests/test_auth.py::test_signature_checked",
        "tests/test_auth.py::TestAuth0003Cache::test_cache",
        "tests/test_auth.py::test_rejects_auth_0555_and_auth_0001",
    ]
    assert {(c.kind, c.name) for c in r["AUTH-0003"].tests} == {
        ("test-name", "tests/test_auth.py::TestAuth0003Cache::test_cache"),
        ("test-marker", "tests/test_auth.py::TestAuth0003Cache::test_cache"),
    }
    assert [c.kind for c in r["AUTH-0004"].tests] == ["test-marker"]

    assert [c.name for c in r["AUTH-0001"].changes] == ["Reject expired tokens"]
    assert [c.name for c in r["AUTH-0002"].changes] == ["Reject expired tokens"]
    assert [c.name for c in r["AUTH-0004"].changes] == ["Sign tokens"]
    head = git(repo, "rev-parse", "HEAD~1").strip()
    assert r["AUTH-0004"].changes[0].source == head

    assert index.gaps.no_contract == ["AUTH-0002"]
    assert index.gaps.no_test == []
    assert index.gaps.no_change == ["AUTH-0003"]
    assert sorted((c.req_id, c.kind) for c in index.gaps.unknown) == [
        ("AUTH-0404", "test-marker"), ("AUTH-0555", "test-name"), ("AUTH-0777", "openapi-operation"),
        ("AUTH-0888", "commit"), ("not an id", "json-schema"), ("tbd", "commit"),
    ]  # fmt: skip


def test_trace_index_json_round_trips(repo: Path) -> None:
    index = trace_repository(repo)
    data = json.loads(index.to_json())
    assert data["gaps"]["no_contract"] == ["AUTH-0002"]
    assert data["requirements"]["AUTH-0001"]["changes"][0]["kind"] == "commit"
    assert type(index).model_validate_json(index.to_json()) == index


def test_commits_on_a_branch_range_and_in_an_empty_repo(repo: Path, tmp_path: Path) -> None:
    assert [c.req_id for c in scan_commits(repo, ["HEAD~1..HEAD"])] == []
    assert [c.req_id for c in scan_commits(repo, ["HEAD~2..HEAD"])] == ["AUTH-0004", "tbd"]
    assert [c.req_id for c in scan_commits(repo, keys=["Req-Id"])] == ["AUTH-0002", "AUTH-0888"]
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert scan_commits(empty) == []
    with pytest.raises(GitLogError, match="git log failed"):
        scan_commits(repo, ["no-such-branch"])


def test_scanning_is_static(tmp_path: Path) -> None:
    # Importing this file would raise; scanning only reads it.
    source = "raise SystemExit('imported!')\n\ndef test_auth_0001():\n    pass\n"
    assert [c.req_id for c in scan_python_test(source, "t.py", ["AUTH-0001"], r"[A-Z][A-Z0-9]+-\d{4}")] == ["AUTH-0001"]
    assert scan_python_test("def broken(:\n", "t.py", [], r"[A-Z]+-\d{4}") == []


def test_custom_id_pattern_with_multi_segment_ids(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "specs" / "s.md").write_text("- OC-CLI-2001 (MUST): Queue API.\n")
    (tmp_path / "tests" / "test_x.py").write_text("def test_admission_oc_cli_2001():\n    pass\n")
    index = trace_repository(tmp_path, git_revs=None, id_pattern=r"[A-Z]+(?:-[A-Z]+)*-\d{4}")
    assert [c.name for c in index.requirements["OC-CLI-2001"].tests] == ["tests/test_x.py::test_admission_oc_cli_2001"]
    assert index.gaps.unknown == []
