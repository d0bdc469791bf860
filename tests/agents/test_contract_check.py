"""Contract validation: JSON Schema, OpenAPI and Pact documents, in memory and as the contracts gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llama_orch.agents import _contract_check
from llama_orch.agents._contract_check import check_contract_text

SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "x-req-id": "STR-0001", "type": "object"}
OPENAPI = """
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /items:
    get:
      operationId: listItems
      x-req-id: STR-0002
      responses:
        "200": {description: ok}
"""
PACT = {
    "consumer": {"name": "cli"}, "provider": {"name": "orchestratord"},
    "interactions": [{"description": "STR-0003 submit", "request": {"method": "POST", "path": "/v1/tasks"},
                      "response": {"status": 202}}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.json", json.dumps(SCHEMA), None),
        ("a.json", json.dumps({**SCHEMA, "type": "whole-number"}), "not a valid JSON Schema"),
        ("a.json", json.dumps({"type": "object"}), "cites no requirement"),
        ("a.json", "{not json", "not valid JSON"),
        ("a.json", "[1, 2]", "must be an object"),
        ("a.yaml", OPENAPI, None),
        ("a.yaml", OPENAPI.replace("      x-req-id: STR-0002\n", ""), "has no x-req-id"),
        ("a.yaml", OPENAPI.replace("openapi: 3.1.0", "openapi: 3.1.0\nbogus: [1"), "not valid YAML"),
        ("a.yaml", OPENAPI.replace('info: {title: t, version: "1"}\n', ""), "not valid OpenAPI"),
        ("p.json", json.dumps(PACT), None),
        ("p.json", json.dumps({**PACT, "interactions": [{"description": "x"}]}), "needs a request"),
    ],
)
def test_documents(name: str, text: str, problem: str | None) -> None:
    problems = check_contract_text(text, name)
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in problems[0]


def test_the_gate_script(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "good.json").write_text(json.dumps(SCHEMA))
    script = Path(_contract_check.__file__)
    ok = subprocess.run([sys.executable, str(script), "contracts"], cwd=tmp_path, capture_output=True, text=True,
                        timeout=60, check=False)  # fmt: skip
    assert ok.returncode == 0 and "1 contract file(s) checked, 0 problem(s)" in ok.stdout
    (tmp_path / "contracts" / "bad.json").write_text(json.dumps({"type": "object"}))
    bad = subprocess.run([sys.executable, str(script), "contracts", "missing"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 1
    assert "FAILED contracts/bad.json::contract - the schema cites no requirement" in bad.stdout
