"""A pool's model is provisioned at start (pools.resolve_model): a pool whose model cannot be had
stays unready and admission answers 503 POOL_UNREADY at once, never a hang; reload provisions too."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from llama_orch.server.config import ModelsConfig, OrchestratorConfig
from tests.conftest import Serve, fast_config, read_stream
from tests.server.test_app import error_of, submit


def _config(model_ref: str, cache: Path, *, allow_network: bool) -> OrchestratorConfig:
    config = fast_config(model_ref=model_ref)
    return config.model_copy(update={"models": ModelsConfig(cache_dir=str(cache), allow_network=allow_network)})


async def test_uncached_model_with_fetches_forbidden_answers_pool_unready(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    ref = "hf:org/absent/model.gguf"
    base = await serve(_config(ref, tmp_path, allow_network=False))
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 2}) as resp:
        body = await error_of(resp, 503, "POOL_UNREADY")
    assert "not cached" in body["message"] and "fetches are forbidden" in body["message"]
    assert body["retriable"] is False
    assert body["details"]["pool"] == "default" and body["details"]["model_ref"] == ref
    async with http.get(f"{base}/v1/pools/default/health") as resp:
        health = await resp.json()
    assert (health["state"], health["ready"]) == ("unready", False)
    assert "not cached" in health["last_error"]
    async with http.get(f"{base}/v1/replicasets") as resp:
        (replicaset,) = (await resp.json())["replicasets"]
    assert replicaset["state"] == "unready"
    assert {r["state"] for r in replicaset["replicas"]} == {"unready"}
    # A reload to a model it can have brings the pool up.
    async with http.post(f"{base}/v1/pools/default/reload", json={"model_ref": "mock:tiny"}) as resp:
        assert resp.status == 200, await resp.text()
    task = await submit(http, base, max_tokens=2)
    assert (await read_stream(http, base, task["task_id"]))[-1].event == "end"


async def test_missing_local_model_file_is_unready(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    base = await serve(_config(f"file:{tmp_path / 'nope.gguf'}", tmp_path, allow_network=True))
    async with http.post(f"{base}/v1/tasks", json={"prompt": "x", "max_tokens": 2}) as resp:
        body = await error_of(resp, 503, "POOL_UNREADY")
    assert "does not exist" in body["message"]


async def test_cached_and_local_models_serve(serve: Serve, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    base = await serve(_config(str(model), tmp_path / "cache", allow_network=False))
    task = await submit(http, base, max_tokens=2, model_ref=str(model))
    assert (await read_stream(http, base, task["task_id"]))[-1].event == "end"


async def test_reload_to_an_unfetchable_model_rolls_back(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base = await serve(_config("mock:tiny", tmp_path, allow_network=False))
    async with http.post(f"{base}/v1/pools/default/reload", json={"model_ref": "https://example.org/m.gguf"}) as resp:
        body = await error_of(resp, 422, "RELOAD_FAILED")
    assert "network fetches are forbidden" in body["message"]
    async with http.get(f"{base}/v1/pools/default/health") as resp:
        assert (await resp.json())["state"] == "ready"
