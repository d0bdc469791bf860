"""The catalog over real HTTP on loopback: create, list, get, verify, state, delete, bad input, restarts."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from llama_orch.errors import AdmissionError
from llama_orch.server._http import CATALOG
from llama_orch.server.app import create_app
from llama_orch.server.config import CatalogConfig, OrchestratorConfig
from llama_orch_api import CatalogModel, CatalogModelList, ErrorCode, ErrorEnvelope, VerifyResult
from tests.conftest import Serve, fast_config, free_port
from tests.server.test_openapi_drift import find_operation, load_spec

CONTENT = b"GGUF" + bytes(range(256)) * 16
MODELS = "/v1/catalog/models"
CID = "catalog-test.1"


@pytest.fixture
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def config(tmp_path: Path, signer: Ed25519PrivateKey) -> OrchestratorConfig:
    public = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    catalog = CatalogConfig(trusted_keys={"release": base64.b64encode(public).decode()})
    return fast_config().model_copy(update={"data_dir": str(tmp_path / "data"), "catalog": catalog})


@pytest.fixture
def model_file(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "model.gguf"
    path.write_bytes(CONTENT)
    return {"path": str(path), "sha256": hashlib.sha256(CONTENT).hexdigest(), "size_bytes": len(CONTENT)}


def body(file: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "model_ref": "hf:org/repo/model.gguf",
        "source": "hf:org/repo/model.gguf",
        "files": [file],
    } | extra


async def call(
    http: aiohttp.ClientSession, method: str, url: str, expect: int, **kwargs: Any
) -> tuple[aiohttp.ClientResponse, Any]:
    """One request; checks the status and the correlation id echo, returns the JSON body (or None)."""
    async with http.request(method, url, headers={"X-Correlation-Id": CID}, **kwargs) as resp:
        raw = await resp.read()
    assert resp.status == expect, raw.decode(errors="replace")
    assert resp.headers.get("X-Correlation-Id") == CID
    if not raw:
        return resp, None
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp, json.loads(raw)


def envelope(data: Any, code: ErrorCode) -> ErrorEnvelope:
    error = ErrorEnvelope.model_validate(data)
    assert error.code is code, error
    assert error.correlation_id == CID
    return error


def error_types(error: ErrorEnvelope) -> set[str]:
    """The pydantic error types the envelope's details list (fields are named, values never echoed)."""
    assert error.details is not None
    problems: Any = error.details["errors"]
    return {p["type"] for p in problems}


# -- the happy path -------------------------------------------------------------------------------


async def test_create_get_list_verify_retire_reactivate_delete(
    serve: Serve, http: aiohttp.ClientSession, config: OrchestratorConfig, model_file: dict[str, Any]
) -> None:
    base = await serve(config)
    resp, created = await call(http, "POST", base + MODELS, 201, json=body(model_file, tags=["gemma"]))
    assert resp.headers["Location"] == f"{MODELS}/m1"
    entry = CatalogModel.model_validate(created)
    assert (entry.id, entry.state.value, entry.verification.status.value) == ("m1", "Active", "unverified")
    assert entry.digest == f"sha256:{model_file['sha256']}"
    assert entry.trust_policy.mode.value == "permissive"  # the server's default policy

    _, got = await call(http, "GET", f"{base}{MODELS}/m1", 200)
    assert got == created
    _, listed = await call(http, "GET", base + MODELS, 200)
    assert CatalogModelList.model_validate(listed).models == [entry]
    _, active = await call(http, "GET", base + MODELS, 200, params={"state": "Active"})
    assert [m["id"] for m in active["models"]] == ["m1"]

    _, verified = await call(http, "POST", f"{base}{MODELS}/m1/verify", 200)
    result = VerifyResult.model_validate(verified)
    assert result.status.value == "verified" and result.errors == []
    # The default policy wants a signature; being permissive, its absence only warns.
    assert result.warnings == ["no signature (the policy requires one)"]
    _, got = await call(http, "GET", f"{base}{MODELS}/m1", 200)
    assert got["verification"] == verified

    change = {"state": "Retired", "drain_deadline_ms": 60000, "reason": "superseded"}
    _, retired = await call(http, "POST", f"{base}{MODELS}/m1/state", 200, json=change)
    assert (retired["state"], retired["state_reason"]) == ("Retired", "superseded")
    assert retired["retired_at"] is not None and retired["drain_deadline_at"] is not None
    _, listed = await call(http, "GET", base + MODELS, 200, params={"state": "Retired"})
    assert [m["id"] for m in listed["models"]] == ["m1"]
    _, listed = await call(http, "GET", base + MODELS, 200, params={"state": "Active"})
    assert listed == {"models": []}

    _, active_again = await call(http, "POST", f"{base}{MODELS}/m1/state", 200, json={"state": "Active"})
    assert (active_again["state"], active_again["retired_at"], active_again["drain_deadline_at"]) == (
        "Active",
        None,
        None,
    )

    resp, nothing = await call(http, "DELETE", f"{base}{MODELS}/m1", 204)
    assert nothing is None
    _, missing = await call(http, "GET", f"{base}{MODELS}/m1", 404)
    envelope(missing, ErrorCode.NOT_FOUND)
    _, listed = await call(http, "GET", base + MODELS, 200)
    assert listed == {"models": []}


async def test_verify_reports_a_bad_digest_as_a_failed_result_not_an_http_error(
    serve: Serve, http: aiohttp.ClientSession, config: OrchestratorConfig, model_file: dict[str, Any]
) -> None:
    base = await serve(config)
    wrong = model_file | {"sha256": hashlib.sha256(b"not the model").hexdigest()}
    await call(http, "POST", base + MODELS, 201, json=body(wrong))
    _, result = await call(http, "POST", f"{base}{MODELS}/m1/verify", 200)
    assert result["status"] == "failed"
    assert len(result["errors"]) == 1 and "digest mismatch" in result["errors"][0]
    assert model_file["sha256"] in result["errors"][0]
    _, entry = await call(http, "GET", f"{base}{MODELS}/m1", 200)
    assert entry["verification"] == result


@pytest.mark.parametrize(
    ("mode", "status", "where"), [("permissive", "verified", "warnings"), ("strict", "failed", "errors")]
)
async def test_verify_a_missing_signature_per_mode(
    serve: Serve,
    http: aiohttp.ClientSession,
    config: OrchestratorConfig,
    model_file: dict[str, Any],
    mode: str,
    status: str,
    where: str,
) -> None:
    base = await serve(config)
    policy = {"mode": mode, "require_signature": True}
    await call(http, "POST", base + MODELS, 201, json=body(model_file, trust_policy=policy))
    _, result = await call(http, "POST", f"{base}{MODELS}/m1/verify", 200)
    assert result["status"] == status
    assert result[where] == ["no signature (the policy requires one)"]


async def test_verify_a_signature_by_the_configured_trusted_key(
    serve: Serve,
    http: aiohttp.ClientSession,
    config: OrchestratorConfig,
    model_file: dict[str, Any],
    signer: Ed25519PrivateKey,
) -> None:
    base = await serve(config)
    digest = f"sha256:{model_file['sha256']}"
    good = base64.b64encode(signer.sign(digest.encode())).decode()
    forged = base64.b64encode(Ed25519PrivateKey.generate().sign(digest.encode())).decode()
    strict = {"mode": "strict", "require_signature": True}
    for entry_id, signature, expected in (("good", good, "verified"), ("forged", forged, "failed")):
        spec = body(
            model_file,
            id=entry_id,
            model_ref=f"ref:{entry_id}",
            signatures=[{"key_id": "release", "signature": signature}],
            trust_policy=strict,
        )
        await call(http, "POST", base + MODELS, 201, json=spec)
        _, result = await call(http, "POST", f"{base}{MODELS}/{entry_id}/verify", 200)
        assert result["status"] == expected, result


async def test_without_a_data_dir_the_catalog_still_serves(
    serve: Serve, http: aiohttp.ClientSession, model_file: dict[str, Any]
) -> None:
    base = await serve(None)
    await call(http, "POST", base + MODELS, 201, json=body(model_file))
    _, result = await call(http, "POST", f"{base}{MODELS}/m1/verify", 200)
    assert result["status"] == "verified"


# -- bad input: a typed 4xx envelope, never a 5xx -------------------------------------------------------

BAD_CREATE: dict[str, tuple[Any, str]] = {
    "malformed JSON": (b'{"id": "m1", ', "json_invalid"),
    "not an object": (b"[1, 2]", "model_type"),
    "empty body": (b"", "missing"),
    "unknown field": ({"labels": {"a": "b"}}, "extra_forbidden"),
    "unknown field in a file": (
        {"files": [{"path": "/m", "sha256": "0" * 64, "size_bytes": 1, "md5": "x"}]},
        "extra_forbidden",
    ),
    "unknown field in the policy": ({"trust_policy": {"mode": "strict", "strictness": 1}}, "extra_forbidden"),
    "files not a list": ({"files": "/models/m.gguf"}, "list_type"),
    "no files": ({"files": []}, "too_short"),
    "size not an integer": ({"files": [{"path": "/m", "sha256": "0" * 64, "size_bytes": "big"}]}, "value_error"),
    "relative path": (
        {"files": [{"path": "models/m.gguf", "sha256": "0" * 64, "size_bytes": 1}]},
        "string_pattern_mismatch",
    ),
    "upper-case digest": ({"files": [{"path": "/m", "sha256": "A" * 64, "size_bytes": 1}]}, "string_pattern_mismatch"),
    "same path twice": (
        {
            "files": [
                {"path": "/m", "sha256": "0" * 64, "size_bytes": 1},
                {"path": "/m", "sha256": "1" * 64, "size_bytes": 1},
            ]
        },
        "value_error",
    ),
    "unsupported source": ({"source": "ftp://host/model.gguf"}, "string_pattern_mismatch"),
    "bad id": ({"id": "has space"}, "string_pattern_mismatch"),
    "bad trust mode": ({"trust_policy": {"mode": "paranoid"}}, "enum"),
    "signature not base64": ({"signatures": [{"key_id": "k", "signature": "not base64!"}]}, "string_pattern_mismatch"),
    "tags of the wrong type": ({"tags": "gemma"}, "list_type"),
}


@pytest.mark.parametrize("case", sorted(BAD_CREATE))
async def test_bad_create_bodies_are_400_invalid_params(
    serve: Serve, http: aiohttp.ClientSession, model_file: dict[str, Any], case: str
) -> None:
    base = await serve(None)
    payload, error_type = BAD_CREATE[case]
    kwargs: dict[str, Any] = {"data": payload} if isinstance(payload, bytes) else {"json": body(model_file) | payload}
    _, data = await call(http, "POST", base + MODELS, 400, **kwargs)
    assert error_type in error_types(envelope(data, ErrorCode.INVALID_PARAMS))
    _, listed = await call(http, "GET", base + MODELS, 200)
    assert listed == {"models": []}


BAD_STATE: dict[str, tuple[Any, str]] = {
    "unknown state": ({"state": "Deleted"}, "enum"),
    "lower-case state": ({"state": "retired"}, "enum"),
    "no state": ({"drain_deadline_ms": 1000}, "missing"),
    "negative deadline": ({"state": "Retired", "drain_deadline_ms": -1}, "greater_than_equal"),
    "deadline as a string": ({"state": "Retired", "drain_deadline_ms": "soon"}, "value_error"),
    "deadline when activating": ({"state": "Active", "drain_deadline_ms": 1000}, "value_error"),
    "unknown field": ({"state": "Retired", "deadline_ms": 1000}, "extra_forbidden"),
    "malformed JSON": (b"{state: Retired}", "json_invalid"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATE))
async def test_bad_state_changes_are_400_and_change_nothing(
    serve: Serve, http: aiohttp.ClientSession, model_file: dict[str, Any], case: str
) -> None:
    base = await serve(None)
    await call(http, "POST", base + MODELS, 201, json=body(model_file))
    payload, error_type = BAD_STATE[case]
    kwargs: dict[str, Any] = {"data": payload} if isinstance(payload, bytes) else {"json": payload}
    _, data = await call(http, "POST", f"{base}{MODELS}/m1/state", 400, **kwargs)
    assert error_type in error_types(envelope(data, ErrorCode.INVALID_PARAMS))
    _, entry = await call(http, "GET", f"{base}{MODELS}/m1", 200)
    assert entry["state"] == "Active"


@pytest.mark.parametrize(
    "params", [{"state": "Deleted"}, {"status": "Active"}, [("state", "Active"), ("state", "Retired")]], ids=str
)
async def test_bad_list_queries_are_400(serve: Serve, http: aiohttp.ClientSession, params: Any) -> None:
    base = await serve(None)
    _, data = await call(http, "GET", base + MODELS, 400, params=params)
    envelope(data, ErrorCode.INVALID_PARAMS)


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/verify", None),
        ("POST", "/state", {"state": "Retired"}),
    ],
)
async def test_unknown_ids_are_404(
    serve: Serve, http: aiohttp.ClientSession, method: str, suffix: str, payload: Any
) -> None:
    base = await serve(None)
    _, data = await call(http, method, f"{base}{MODELS}/nope{suffix}", 404, json=payload)
    assert "nope" in envelope(data, ErrorCode.NOT_FOUND).message


async def test_duplicate_id_or_model_ref_is_409_conflict(
    serve: Serve, http: aiohttp.ClientSession, model_file: dict[str, Any]
) -> None:
    base = await serve(None)
    await call(http, "POST", base + MODELS, 201, json=body(model_file))
    _, data = await call(http, "POST", base + MODELS, 409, json=body(model_file, model_ref="other"))
    assert "exists already" in envelope(data, ErrorCode.CONFLICT).message
    _, data = await call(http, "POST", base + MODELS, 409, json=body(model_file, id="m2"))
    assert "already catalogued as 'm1'" in envelope(data, ErrorCode.CONFLICT).message


async def test_a_body_over_the_limit_is_413(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(None)
    too_big = io.BytesIO(b"x" * (2 << 20))  # no Content-Length: counted as it arrives
    _, data = await call(http, "POST", base + MODELS, 413, data=too_big)
    envelope(data, ErrorCode.PAYLOAD_TOO_LARGE)


def test_a_trusted_key_that_is_not_an_ed25519_key_is_refused_in_the_config() -> None:
    with pytest.raises(pydantic.ValidationError, match="trusted key 'bad'"):
        CatalogConfig.model_validate({"trusted_keys": {"bad": base64.b64encode(b"short").decode()}})


# -- the contract ------------------------------------------------------------------------------------------


async def test_every_status_answered_is_declared_in_control_yaml(
    serve: Serve, http: aiohttp.ClientSession, model_file: dict[str, Any]
) -> None:
    base = await serve(None)
    answered: dict[tuple[str, str], set[str]] = {}

    async def record(method: str, template: str, url: str, **kwargs: Any) -> None:
        async with http.request(method, url, **kwargs) as resp:
            await resp.read()
        answered.setdefault((template, method.lower()), set()).add(str(resp.status))

    one, verify, state = f"{MODELS}/{{id}}", f"{MODELS}/{{id}}/verify", f"{MODELS}/{{id}}/state"
    await record("POST", MODELS, base + MODELS, json=body(model_file))  # 201
    await record("POST", MODELS, base + MODELS, json=body(model_file))  # 409
    await record("POST", MODELS, base + MODELS, data=b"{")  # 400
    await record("POST", MODELS, base + MODELS, data=io.BytesIO(b"x" * (2 << 20)))  # 413
    await record("GET", MODELS, base + MODELS)  # 200
    await record("GET", MODELS, base + MODELS, params={"state": "x"})  # 400
    await record("GET", one, f"{base}{MODELS}/m1")  # 200
    await record("GET", one, f"{base}{MODELS}/nope")  # 404
    await record("POST", verify, f"{base}{MODELS}/m1/verify")  # 200
    await record("POST", verify, f"{base}{MODELS}/nope/verify")  # 404
    await record("POST", state, f"{base}{MODELS}/m1/state", json={"state": "Retired"})  # 200
    await record("POST", state, f"{base}{MODELS}/m1/state", json={"state": "x"})  # 400
    await record("POST", state, f"{base}{MODELS}/nope/state", json={"state": "Active"})  # 404
    await record("POST", state, f"{base}{MODELS}/m1/state", data=io.BytesIO(b"x" * (2 << 20)))  # 413
    await record("DELETE", one, f"{base}{MODELS}/m1")  # 204
    await record("DELETE", one, f"{base}{MODELS}/m1")  # 404

    specs = {"control.yaml": load_spec("control.yaml")}
    problems = []
    for (path, method), statuses in sorted(answered.items()):
        _, op = find_operation(specs, path, method)
        assert "x-llorch-status" not in op, f"{method.upper()} {path} is still marked planned"
        missing = statuses - set(op["responses"])
        if missing:
            problems.append(f"{method.upper()} {path}: answered {sorted(missing)}, not declared")
    assert problems == []
    assert answered[(MODELS, "post")] == {"201", "400", "409", "413"}


# -- restarts ---------------------------------------------------------------------------------------------


@asynccontextmanager
async def orchestratord(config: OrchestratorConfig) -> AsyncIterator[tuple[str, web.Application]]:
    """One orchestratord on loopback, stopped (lifespan and all) when the block ends."""
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


async def test_the_catalog_survives_an_orchestratord_restart(
    http: aiohttp.ClientSession, config: OrchestratorConfig, model_file: dict[str, Any]
) -> None:
    wrong = model_file | {"sha256": hashlib.sha256(b"tampered").hexdigest()}
    async with orchestratord(config) as (base, _):
        await call(http, "POST", base + MODELS, 201, json=body(model_file, id="good", model_ref="ref:good"))
        await call(http, "POST", base + MODELS, 201, json=body(wrong, id="bad", model_ref="ref:bad"))
        await call(http, "POST", base + MODELS, 201, json=body(model_file, id="old", model_ref="ref:old"))
        await call(http, "POST", f"{base}{MODELS}/good/verify", 200)
        await call(http, "POST", f"{base}{MODELS}/bad/verify", 200)
        await call(http, "POST", f"{base}{MODELS}/old/state", 200, json={"state": "Retired", "drain_deadline_ms": 0})
        _, before = await call(http, "GET", base + MODELS, 200)

    async with orchestratord(config) as (base, app):
        _, after = await call(http, "GET", base + MODELS, 200)
        assert after == before
        assert [(m["id"], m["state"], m["verification"]["status"]) for m in after["models"]] == [
            ("bad", "Active", "failed"),
            ("good", "Active", "verified"),
            ("old", "Retired", "unverified"),
        ]
        # The admission hook of the new process sees the stored verdicts.
        catalog = app[CATALOG]
        catalog.check_admissible("ref:good")
        for model_ref, code in (("ref:bad", ErrorCode.UNTRUSTED_ARTIFACT), ("ref:old", ErrorCode.MODEL_DEPRECATED)):
            with pytest.raises(AdmissionError) as info:
                catalog.check_admissible(model_ref)
            assert info.value.code is code
        await call(http, "DELETE", f"{base}{MODELS}/bad", 204)

    async with orchestratord(config) as (base, _):
        _, listed = await call(http, "GET", base + MODELS, 200)
        assert [m["id"] for m in listed["models"]] == ["good", "old"]
