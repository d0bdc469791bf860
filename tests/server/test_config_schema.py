"""The committed config JSON Schema is current, the example config loads, bad configs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from llama_orch.core import QueuePolicy
from llama_orch.errors import ConfigError
from llama_orch.server.config import OrchestratorConfig, PoolConfig, config_json_schema, load_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "contracts" / "config.schema.json"
EXAMPLE = ROOT / "examples" / "pools.yaml"
REGENERATE = "orchestratord --print-config-schema > contracts/config.schema.json"


def test_committed_schema_is_current() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == config_json_schema(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is out of date with OrchestratorConfig; regenerate it with:\n    {REGENERATE}"
    )


def test_committed_schema_is_a_valid_json_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["pools"]
    assert schema["additionalProperties"] is False


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config, OrchestratorConfig)
    assert [p.id for p in config.pools] == ["interactive", "batch"]
    assert all(p.engine == "mock" for p in config.pools)
    policies = {p.id: p.queue.policy for p in config.pools}
    assert policies == {"interactive": QueuePolicy.reject, "batch": QueuePolicy.drop_lru}


def test_example_config_validates_against_the_committed_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ]
    assert errors == []


def test_no_path_gives_the_embedded_default() -> None:
    config = load_config(None)
    assert [p.id for p in config.pools] == ["default", "chat"]
    pool, chat = config.pools
    assert (pool.engine, pool.provision, pool.model_ref) == ("llamacpp", "source", "embedded:gemma3-270m")
    assert (chat.engine, chat.provision, chat.model_ref) == ("llamacpp", "source", "embedded:smollm2-135m")
    assert pool.managed and pool.accelerator == "auto" and chat.managed
    assert pool.workloads == chat.workloads == ["completion", "chat"]


@pytest.mark.parametrize(
    ("pool", "provision", "model_ref", "managed"),
    [
        ({"engine": "llamacpp"}, "source", "embedded:gemma3-270m", True),
        ({"engine": "llamacpp", "model_ref": "file:/m.gguf"}, "source", "file:/m.gguf", True),
        ({"engine": "llamacpp", "provision": "binary", "engine_binary": "/opt/llama-server"}, "binary",
         "embedded:gemma3-270m", True),
        ({"engine": "llamacpp", "endpoint": "http://127.0.0.1:9"}, "external", "mock:tiny", False),
        ({"engine": "mock"}, None, "mock:tiny", False),
    ],
)  # fmt: skip
def test_llamacpp_provisioning_defaults(
    pool: dict[str, str], provision: str | None, model_ref: str, managed: bool
) -> None:
    config = PoolConfig(id="p", **pool)  # type: ignore[arg-type]
    assert (config.provision, config.model_ref, config.managed) == (provision, model_ref, managed)


GOOD_POOL = "pools:\n  - id: a\n"

BAD_CONFIGS: dict[str, tuple[str, list[str]]] = {
    # name: (file text, fragments the error message must contain)
    "unknown top-level key": (GOOD_POOL + "colour: blue\n", ["is invalid", "colour", "Extra inputs are not permitted"]),
    "unknown pool key": ("pools:\n  - id: a\n    slotz: 4\n", ["pools.0.slotz", "Extra inputs are not permitted"]),
    "duplicate pool ids": ("pools:\n  - id: a\n  - id: b\n  - id: a\n", ["duplicate pool ids", "'a'"]),
    "wrong type": ("pools:\n  - id: a\n    replicas: many\n", ["pools.0.replicas", "integer"]),
    "wrong type of section": ("server: 8080\n" + GOOD_POOL, ["server", "dictionary"]),
    "bad enum": ("pools:\n  - id: a\n    queue:\n      policy: shuffle\n", ["pools.0.queue.policy", "reject"]),
    "no pools": ("server:\n  port: 8080\n", ["pools", "Field required"]),
    "empty file": ("", ["pools", "Field required"]),
    "not YAML": ("pools: [\n  - id: a\n", ["is not valid YAML"]),
    "YAML but not a mapping": ("- id: a\n", ["is invalid"]),
    "external llamacpp without endpoint": (
        "pools:\n  - id: a\n    engine: llamacpp\n    provision: external\n",
        ["'a'", "provision 'external' needs an endpoint"],
    ),
    "binary llamacpp without a binary": (
        "pools:\n  - id: a\n    engine: llamacpp\n    provision: binary\n",
        ["'a'", "needs engine_binary"],
    ),
    "managed llamacpp with an endpoint": (
        "pools:\n  - id: a\n    engine: llamacpp\n    provision: source\n    endpoint: http://127.0.0.1:1\n",
        ["'a'", "an endpoint is for provision 'external'"],
    ),
    "bad accelerator": ("pools:\n  - id: a\n    accelerator: tpu\n", ["pools.0.accelerator", "'cuda'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_raises_a_readable_config_error(tmp_path: Path, case: str) -> None:
    text, fragments = BAD_CONFIGS[case]
    path = tmp_path / "orchestratord.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message, f"the message should name the file: {message}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert "Traceback" not in message and "pydantic" not in message.lower(), message


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(path)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


BEFORE_THE_MOVE = [
    "_Strict", "QueueConfig", "RestartPolicy", "PoolConfig", "SessionConfig", "ServerConfig", "ArtifactsConfig",
    "TrustPolicyConfig", "CatalogConfig", "ModelsConfig", "RegistryConfig", "OrchestratorConfig", "EMBEDDED_MODEL_REF",
    "embedded_default", "load_config", "config_json_schema", "QueuePolicy", "MockSettings", "ConfigError",
    "DEFAULT_POLICY", "load_public_key", "BudgetSpec", "Determinism", "TrustMode", "TrustPolicy", "Workload",
]  # fmt: skip


def test_every_name_the_config_module_had_is_still_importable_from_it() -> None:
    """The models moved down to the rooms that own them; ``llama_orch.server.config`` re-exports them."""
    from llama_orch import artifacts, catalog, pools, scheduler
    from llama_orch.server import config

    missing = [name for name in BEFORE_THE_MOVE if not hasattr(config, name)]
    assert missing == []
    assert config.PoolConfig is pools.PoolConfig and config.ModelsConfig is pools.ModelsConfig
    assert config.SessionConfig is scheduler.SessionConfig and config.RegistryConfig is scheduler.RegistryConfig
    assert config.CatalogConfig is catalog.CatalogConfig and config.ArtifactsConfig is artifacts.ArtifactsConfig
    assert set(config.__all__) >= set(BEFORE_THE_MOVE) - {"_Strict"}


@pytest.mark.parametrize(
    ("pool", "error"),
    [
        pytest.param({"ctx_max": 1024, "max_tokens": 2048}, "max_tokens 2048 is above its context of 1024", id="set"),
        pytest.param({"mock": {"ctx_max": 512}, "max_tokens": 600}, "context of 512", id="mock-context"),
        pytest.param({"engine": "llamacpp", "max_tokens": 5000}, "context of 4096", id="managed-default"),
    ],
)
def test_max_tokens_above_the_context_is_refused(pool: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError) as info:
        PoolConfig(id="p", **pool)
    assert error in str(info.value)


def test_max_tokens_defaults_to_the_context_when_only_ctx_max_is_set() -> None:
    assert PoolConfig(id="p", ctx_max=1024).max_tokens == 1024
    assert PoolConfig(id="p", ctx_max=100_000).max_tokens == 2048
    # An engine at an endpoint says its context only once it runs: nothing to check here.
    assert PoolConfig(id="p", engine="llamacpp", endpoint="http://127.0.0.1:1", max_tokens=9000).max_tokens == 9000
