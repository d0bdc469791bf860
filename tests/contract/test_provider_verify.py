"""Provider side of the Pact (OC-CLI-3102): orchestratord honours what llama-orch-cli expects.

The committed pact (``contracts/pacts/llama-orch-cli-orchestratord.json``) is replayed by the Pact
reference verifier (pact-python's FFI) against a real ``orchestratord`` process on 127.0.0.1. Each
provider state gets a fresh server started with that state's configuration, and the verifier is
filtered to the interactions that name the state; the state's setup runs before each of them
through the public API (``tests/contract/_provider_states.py``). A state the provider tests do not
know fails, as does any mismatch of status, headers or body.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from pact import Verifier

from llama_orch.bdd._server import EmbeddedOrchestratord
from llama_orch.client import Client, RetryPolicy
from tests.conftest import free_port
from tests.contract._pact import PACT_FILE, PROVIDER
from tests.contract._provider_states import STATES, state_endpoint

pytestmark = pytest.mark.subprocess


def _interactions() -> list[dict[str, Any]]:
    return list(json.loads(PACT_FILE.read_text())["interactions"])


def _state_of(interaction: dict[str, Any]) -> str:
    states = interaction.get("providerStates") or []
    assert len(states) <= 1, f"{interaction['description']!r}: one provider state at most"
    return str(states[0]["name"]) if states else ""


def _states() -> list[str]:
    return sorted({_state_of(i) for i in _interactions()})


def _rust_regex_escape(text: str) -> str:
    # The verifier's filters are Rust regexes; escape exactly its metacharacters.
    return re.sub(r"([\\.+*?()|\[\]{}^$#&\-~])", r"\\\1", text)


def _verifier(base_url: str, state: str) -> Verifier:
    verifier = Verifier(PROVIDER, host="127.0.0.1").add_transport(url=base_url).add_source(PACT_FILE)
    if state:
        verifier.filter(state=f"^{_rust_regex_escape(state)}$")
    else:
        verifier.filter(no_state=True)
    return verifier


def test_the_pact_is_committed_and_names_every_operation_once() -> None:
    interactions = _interactions()
    descriptions = [i["description"] for i in interactions]
    assert len(descriptions) == len(set(descriptions)), "interaction descriptions must be unique"
    assert len(interactions) >= 20


@pytest.mark.parametrize("state", _states(), ids=lambda s: s.replace(" ", "-") or "no-state")
def test_orchestratord_honours_the_pact(state: str, tmp_path: Path) -> None:
    known = STATES.get(state)
    assert known is not None, f"the pact needs provider state {state!r}, which _provider_states.py does not set up"
    config = tmp_path / "orchestratord.yaml"
    config.write_text(yaml.safe_dump(known.config))
    expected = sorted(i["description"] for i in _interactions() if _state_of(i) == state)

    with (
        EmbeddedOrchestratord(config) as server,
        Client(server.base_url, retry=RetryPolicy(max_attempts=1), limiter=None) as client,
        state_endpoint(lambda name: STATES[name].setup(client, tmp_path)) as (state_url, setup_failures),
    ):
        verifier = _verifier(server.base_url, state).state_handler(state_url, body=True)
        try:
            verifier.verify()
        except RuntimeError:
            pytest.fail(
                f"verification failed:\n{verifier.output(strip_ansi=True)}\n"
                f"provider state setup failures: {setup_failures}\norchestratord log:\n{server.log[-3000:]}"
            )
        results = verifier.results

    # Every interaction of the state was replayed, and each one passed.
    assert results["errors"] == [], verifier.output(strip_ansi=True)
    verified = sorted(r["description"] for r in results["interactionResults"] if r["result"] == "OK")
    assert verified == expected, verifier.output(strip_ansi=True)


# -- the verification can fail --------------------------------------------------------------------------


def drifted_provider() -> web.Application:
    """A provider that drifted from the contract: a stream whose tokens come before `started`, and
    an admission whose queue position is a string."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        response.headers["X-Correlation-Id"] = request.headers.get("X-Correlation-Id", "x")
        await response.prepare(request)
        await response.write(b'id: 1\nevent: token\ndata: {"t":"a","i":0}\n\n')
        await response.write(b'id: 2\nevent: started\ndata: {"task_id":"t-1"}\n\n')
        await response.write(b'id: 3\nevent: end\ndata: {"tokens_out":1,"decode_time_ms":0}\n\n')
        await response.write_eof()
        return response

    async def create(request: web.Request) -> web.Response:
        body = {"task_id": "t", "pool": "default", "queue_position": "0", "predicted_start_ms": 0,
                "backoff_ms": 0, "stream_url": "/v1/tasks/t/stream"}  # fmt: skip
        headers = {"X-Correlation-Id": request.headers.get("X-Correlation-Id", "x"), "Location": body["stream_url"],
                   "X-Backoff-Ms": "0"}  # fmt: skip
        return web.json_response(body, status=202, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/tasks/{task_id}/stream", stream)
    app.router.add_post("/v1/tasks", create)
    return app


async def test_the_verifier_rejects_a_drifted_provider() -> None:
    runner = web.AppRunner(drifted_provider())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    verifier = (
        Verifier(PROVIDER, host="127.0.0.1")
        .add_transport(url=f"http://127.0.0.1:{port}")
        .add_source(PACT_FILE)
        .filter(description="^(a task submission|a request for the event stream of task t-1)$")
    )
    try:
        with state_endpoint(lambda name: None) as (state_url, _):
            verifier.state_handler(state_url, body=True)
            # The verifier blocks; the provider (on this event loop) must go on serving meanwhile.
            with pytest.raises(RuntimeError):
                await asyncio.to_thread(verifier.verify)
    finally:
        await runner.cleanup()
    output = verifier.output(strip_ansi=True)
    assert "There were 2 pact failures" in output, output
    assert "queue_position" in output, output
