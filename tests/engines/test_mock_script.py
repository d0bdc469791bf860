"""The scripted mock engine (``mock.script``): rules, answers in turn, a checked file, errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llama_orch.engines._base import EngineRequest
from llama_orch.engines.mock import MockEngine, MockSettings, answer_tokens
from llama_orch.server.config import OrchestratorConfig

SCRIPT = """
rules:
  - role: coder
    match: ["Work item: code:A-0001", "rejected"]
    answer: "the fix"
  - role: coder
    match: "Work item: code:A-0001"
    answer: ["first try", "second try"]
  - regex: "^Work item: test:"
    answer: "a test"
default: "no idea"
"""


async def collect(engine: MockEngine, prompt: str, max_tokens: int = 64) -> str:
    out = []
    async for batch in engine.stream(EngineRequest(task_id="t", prompt=prompt, max_tokens=max_tokens, seed=1)):
        out.extend(batch)
    return "".join(out)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT)
    return path


async def test_rules_answer_in_order_and_in_turn(script: Path) -> None:
    engine = MockEngine(MockSettings(script=str(script), tokens_per_s=None, first_token_ms=0))
    coder = "# Role: coder\n\nWork item: code:A-0001\n"
    assert await collect(engine, coder) == "first try"
    assert await collect(engine, coder) == "second try"
    assert await collect(engine, coder) == "second try"  # the last answer repeats
    assert await collect(engine, coder + "Previous attempt rejected\n") == "the fix"
    assert await collect(engine, "# Role: reviewer\n\nWork item: code:A-0001\n") == "no idea"  # the role differs
    assert await collect(engine, "x\nWork item: test:B-0002\n") == "a test"
    assert await collect(engine, coder + "rejected", max_tokens=1) == "the"  # cut at max_tokens


def test_answers_stream_as_words_that_join_back() -> None:
    text = "  path/x.py\n<<<<<<< FILE\n    indented line\n>>>>>>> FILE\n"
    assert "".join(answer_tokens(text)) == text
    assert answer_tokens("a  b") == ["a", "  b"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rules: [{match: x}]", "answer"),
        ("rules: [{regex: '([', answer: y}]", "not a valid regular expression"),
        ("rules: [{answer: []}]", "at least one answer"),
        ("rules: [{answer: y, bogus: 1}]", "bogus"),
        ("rules: {", "not valid YAML"),
        ("rules: 3", "rules"),
    ],
)
def test_a_bad_script_is_a_config_error_naming_the_key(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as err:
        OrchestratorConfig.model_validate({"pools": [{"id": "p", "mock": {"script": str(path)}}]})
    assert "pools.0.mock.script" in str(err.value) and says in str(err.value)


def test_a_missing_script_stops_orchestratord_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"pools:\n  - id: p\n    mock: {{script: {tmp_path / 'nope.yaml'}}}\n")
    proc = subprocess.run([str(Path(sys.executable).parent / "orchestratord"), "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "mock.script" in proc.stderr and "cannot read" in proc.stderr
