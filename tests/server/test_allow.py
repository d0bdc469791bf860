"""``OPTIONS`` (and any other method a path does not declare) answers ``405`` with an ``Allow``
header that lists exactly the methods the contract declares for that path.

Over every path of ``contracts/openapi/{data,control,openai}.yaml``, with the path's parameters
filled from their examples, on a real orchestratord on loopback, with authentication off and on
(a 405 is answered before credentials are looked at: there is nothing to protect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from llama_orch.auth import hash_token
from llama_orch.server.config import OrchestratorConfig
from tests.conftest import Serve, fast_config

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "contracts" / "openapi"
SPEC_FILES = ("data.yaml", "control.yaml", "openai.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Every method but CONNECT (which aiohttp sends as a tunnel request), declared or not.
PROBES = ("OPTIONS", "PUT", "PATCH", "DELETE", "GET", "POST", "HEAD", "TRACE")


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((SPEC_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _param_example(doc: dict[str, Any], param: dict[str, Any]) -> str:
    if "$ref" in param:
        param = doc["components"]["parameters"][param["$ref"].rsplit("/", 1)[-1]]
    return str(param["example"])


def _paths() -> list[tuple[str, str, str, frozenset[str]]]:
    """(file, path template, a concrete path, declared methods) for every path of every file."""
    found = []
    for name in SPEC_FILES:
        doc = _load(name)
        for template, item in doc["paths"].items():
            methods = frozenset(m.upper() for m in item if m in HTTP_METHODS)
            examples: dict[str, str] = {}
            for op in (item[m] for m in item if m in HTTP_METHODS):
                for param in [*item.get("parameters", []), *op.get("parameters", [])]:
                    resolved = (
                        doc["components"]["parameters"].get(param["$ref"].rsplit("/", 1)[-1])
                        if "$ref" in param
                        else param
                    )
                    if resolved["in"] == "path":
                        examples[resolved["name"]] = _param_example(doc, param)
            concrete = template
            for param_name, value in examples.items():
                concrete = concrete.replace("{" + param_name + "}", value)
            found.append((name, template, concrete, methods))
    return found


PATHS = _paths()
TOKEN = "tok-admin-0123456789abcdef"


def _secured() -> OrchestratorConfig:
    config = fast_config().model_dump(mode="json")
    config["auth"] = {"tokens": [{"subject": "admin", "sha256": hash_token(TOKEN), "scopes": ["admin"]}]}
    return OrchestratorConfig.model_validate(config)


def _allow(header: str | None) -> set[str]:
    assert header is not None, "no Allow header"
    return {m.strip() for m in header.split(",") if m.strip()}


def test_every_path_is_probed() -> None:
    assert {name for name, *_ in PATHS} == set(SPEC_FILES)
    assert all("{" not in concrete for _, _, concrete, _ in PATHS)
    assert len(PATHS) >= 25


@pytest.mark.parametrize("secured", [False, True], ids=["open", "auth"])
async def test_options_allow_lists_exactly_the_declared_methods(
    serve: Serve, http: aiohttp.ClientSession, secured: bool
) -> None:
    base = await serve(_secured() if secured else None)
    wrong = []
    for name, template, concrete, declared in PATHS:
        async with http.options(base + concrete) as resp:
            body = await resp.json()
            if resp.status != 405 or _allow(resp.headers.get("Allow")) != declared:
                wrong.append(f"{name} OPTIONS {template}: {resp.status} Allow {resp.headers.get('Allow')}")
            elif body.get("code") != "METHOD_NOT_ALLOWED" or "X-Correlation-Id" not in resp.headers:
                wrong.append(f"{name} OPTIONS {template}: {body}")
    assert not wrong, "\n".join(wrong)


async def test_every_undeclared_method_gets_the_same_allow(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    wrong = []
    for name, template, concrete, declared in PATHS:
        for method in PROBES:
            if method in declared:
                continue
            async with http.request(method, base + concrete) as resp:
                await resp.read()
                if resp.status != 405 or _allow(resp.headers.get("Allow")) != declared:
                    wrong.append(f"{name} {method} {template}: {resp.status} Allow {resp.headers.get('Allow')}")
    assert not wrong, "\n".join(wrong)


# Ids that look like other routes once decoded: a path is matched as sent (percent-encoded `/`
# stays inside the parameter), so each answer is the Allow of the path the id belongs to.
ENCODED = [
    ("/v1/catalog/models/a%2Fverify", "/v1/catalog/models/{id}"),
    ("/v1/catalog/models/%2E%2E", "/v1/catalog/models/{id}"),
    ("/v1/tasks/a%2Fb/stream", "/v1/tasks/{task_id}/stream"),
    ("/v1/tasks/a%2Fstream/cancel", "/v1/tasks/{task_id}/cancel"),
    ("/v1/sessions/a%2F", "/v1/sessions/{session_id}"),
    ("/v1/artifacts/x%2Flineage", "/v1/artifacts/{id}"),
    ("/v1/pools/a%2Freload/drain", "/v1/pools/{id}/drain"),
    ("/v1/replicas/a.b%2Fheartbeat", "/v1/replicas/{id}"),
    ("/v1/replicas/host.register", "/v1/replicas/{id}"),
]


async def test_encoded_ids_get_their_own_paths_allow(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    declared = {template: methods for _, template, _, methods in PATHS}
    wrong = []
    for raw, template in ENCODED:
        async with http.options(URL(base + raw, encoded=True)) as resp:
            await resp.read()
            if resp.status != 405 or _allow(resp.headers.get("Allow")) != declared[template]:
                wrong.append(f"OPTIONS {raw} ({template}): {resp.status} Allow {resp.headers.get('Allow')}")
    assert not wrong, "\n".join(wrong)
