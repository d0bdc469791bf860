"""The loop configuration: defaults with no file, pyproject or .llama-orch.toml, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_orch.agents import LoopConfig, LoopConfigError, load_loop_config
from llama_orch.agents._loop_config import discover_specs, package_name, source_root
from llama_orch.agents._prompts import Role


def test_no_file_means_defaults() -> None:
    config, source = load_loop_config({"pyproject.toml": None, ".llama-orch.toml": None})
    assert source is None
    assert config == LoopConfig()
    gates = config.gate_specs(python="/py")
    assert [g.name for g in gates] == ["tests"]
    assert gates[0].argv[:3] == ("/py", "-m", "pytest")
    assert gates[0].junit_xml == ".llorch-out/junit.xml"
    assert "--continue-on-collection-errors" in gates[0].argv
    assert gates[0].env == {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    coder = config.role(Role.CODER)
    assert (coder.max_tokens, coder.priority) == (1024, "batch")
    assert config.role(Role.REVIEWER).priority == "interactive"


def test_pyproject_section() -> None:
    text = """
[project]
name = "x"

[tool.llama-orch]
specs = ["docs/spec.md"]
package = "lib"
setup = "uv sync --frozen"
attempts = 3

[tool.llama-orch.gates]
test = "python -m pytest tests"
lint = ["ruff", "check", "."]

[tool.llama-orch.roles.coder]
pool = "big"
max_tokens = 2048

[tool.llama-orch.budget]
tokens = 5000
"""
    config, source = load_loop_config({"pyproject.toml": text, ".llama-orch.toml": None})
    assert source == "pyproject.toml [tool.llama-orch]"
    assert config.specs == ["docs/spec.md"] and config.package == "lib" and config.attempts == 3
    assert config.setup_argv() == ["uv", "sync", "--frozen"]
    assert config.role(Role.CODER).pool == "big" and config.role(Role.CODER).max_tokens == 2048
    assert config.budget.tokens == 5000
    gates = {g.name: g for g in config.gate_specs()}
    assert gates["lint"].argv == ("ruff", "check", ".") and gates["lint"].kind == "lint"
    # A pytest command gets the JUnit report the verdicts are read from, and keeps its plugins.
    assert gates["tests"].argv[:4] == ("python", "-m", "pytest", "tests") and gates["tests"].junit_xml
    assert gates["tests"].env == {}


def test_own_file(tmp_path: Path) -> None:
    text = 'max_tries = 5\nmax_prompt_tokens = 900\n[gates]\ntypecheck = "mypy src"\n'
    (tmp_path / ".llama-orch.toml").write_text(text)
    config, source = load_loop_config(tmp_path)
    assert source == ".llama-orch.toml" and config.max_tries == 5 and config.max_prompt_tokens == 900
    assert [g.name for g in config.gate_specs()] == ["tests", "typecheck"]


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"pyproject.toml": "[tool.llama-orch]\nattempts = 0\n"}, "attempts"),
        ({"pyproject.toml": "[tool.llama-orch]\nbogus = 1\n"}, "bogus"),
        ({"pyproject.toml": "[tool.llama-orch.roles.wizard]\npool = 'x'\n"}, "roles.wizard"),
        ({"pyproject.toml": "[tool.llama-orch.gates]\ntest = ''\n"}, "gates.test"),
        ({"pyproject.toml": "[tool.llama-orch]\nid_pattern = '(['\n"}, "id_pattern"),
        ({".llama-orch.toml": "budget = 3\n"}, "budget"),
        ({".llama-orch.toml": "not toml at all ["}, "not valid TOML"),
        ({"pyproject.toml": "[tool.llama-orch]\n", ".llama-orch.toml": ""}, "both"),
        ({"pyproject.toml": "[tool]\nllama-orch = 3\n"}, "must be a table"),
        ({".llama-orch.toml": "max_prompt_tokens = 10\n"}, "max_prompt_tokens"),
    ],
)
def test_bad_files_name_the_key(files: dict[str, str], says: str) -> None:
    with pytest.raises(LoopConfigError, match=says.replace("[", r"\[").replace("(", r"\(")):
        load_loop_config({"pyproject.toml": None, ".llama-orch.toml": None, **files})


def test_spec_discovery_and_where_code_goes(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.md").write_text("Package: `strkit`\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.spec.md").write_text("x\n")
    (tmp_path / "specs" / "inner.spec.md").write_text("inside a spec folder: found once\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "junk.spec.md").write_text("never\n")
    config = LoopConfig()
    found = discover_specs(tmp_path, config)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["specs", "docs/api.spec.md"]
    assert package_name(tmp_path, config, found) == "strkit"
    (tmp_path / "src" / "strkit").mkdir(parents=True)
    assert source_root(tmp_path, config, "strkit") == "src"
    assert discover_specs(tmp_path, LoopConfig(specs=["docs/api.spec.md", "missing.md"])) == [
        tmp_path / "docs" / "api.spec.md"
    ]
    # Without a Package line, the project's name.
    (tmp_path / "specs" / "a.md").write_text("no package line\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "my-lib"\n')
    assert package_name(tmp_path, config, found) == "my_lib"
