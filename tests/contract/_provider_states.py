"""Provider states for the Pact verification: how to put a real orchestratord into each state.

Test code only: nothing here is a hook inside the server. A state is a configuration file (the
server is started fresh with it, so states never leak into one another) plus a setup that drives
the server through its public API with the SDK, run before each interaction that names the state.
The Pact verifier asks for a state over HTTP; :func:`state_endpoint` answers it on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from llama_orch.client import AdmissionRejectError, Client, ConflictError, TaskExistsError
from llama_orch_api import CatalogFileSpec, CatalogModelCreate
from tests.contract import _pact as names

Setup = Callable[[Client, Path], None]

# Fast: tasks finish in milliseconds. Slow: one slot at 2 tokens/s and a queue of 2, so that a
# task of 8000 tokens holds its slot for the whole verification and the queue fills in 3 posts.
FAST: dict[str, Any] = {
    "server": {"heartbeat_s": 1},
    "pools": [{"id": "default", "mock": {"tokens_per_s": 2000, "first_token_ms": 1, "slots": 2}}],
}
SLOW: dict[str, Any] = {
    "server": {"heartbeat_s": 1},
    "pools": [
        {
            "id": "default",
            "max_tokens": 8000,
            "queue": {"capacity": 2},
            "mock": {"tokens_per_s": 2, "first_token_ms": 1, "slots": 1},
        }
    ],
}
SMALL_BODY_LIMIT: dict[str, Any] = {**FAST, "server": {"heartbeat_s": 1, "max_body_bytes": 1024}}
LONG = 8000  # tokens: at 2 tokens/s a task that never ends on its own during a verification
_FILL_ATTEMPTS = 10  # queue capacity 2 + 1 slot: the fourth submission is refused


@dataclass(frozen=True)
class ProviderState:
    config: dict[str, Any]
    setup: Setup = field(default=lambda client, workdir: None)


def _queue_full(client: Client, workdir: Path) -> None:
    for _ in range(_FILL_ATTEMPTS):
        try:
            client.create_task(prompt="filler", max_tokens=LONG, priority="batch")
        except AdmissionRejectError:
            return
    raise AssertionError(f"the queue did not fill in {_FILL_ATTEMPTS} submissions")


def _pool_busy(client: Client, workdir: Path) -> None:
    # One long task in the only slot and one queued behind it: any new start is far away.
    for task_id in ("busy-1", "busy-2"):
        with suppress(TaskExistsError):
            client.create_task(task_id=task_id, prompt="busy", max_tokens=LONG)


def _task_finished(client: Client, workdir: Path) -> None:
    with suppress(TaskExistsError):
        client.create_task(task_id="t-1", prompt="hello", max_tokens=3, seed=7)
    events = list(client.stream("t-1"))
    assert events[-1].event == "end", events


def _task_running(client: Client, workdir: Path) -> None:
    with suppress(TaskExistsError):
        client.create_task(task_id="t-2", prompt="long", max_tokens=LONG)
    for event in client.stream("t-2"):
        if event.event == "started":
            return
    raise AssertionError("task t-2 ended before it started")


def _session_exists(client: Client, workdir: Path) -> None:
    # Every run is a new turn of the session; it (re)creates the session if it was deleted.
    client.run(session_id="s-1", prompt="hello", max_tokens=3, seed=7)


def _pool_draining(client: Client, workdir: Path) -> None:
    client.drain_pool("default", deadline_ms=1000)


def _plan_stored(client: Client, workdir: Path) -> None:
    client.put_artifact(kind="plan", content=names.PLAN_CONTENT, tags=list(names.PLAN_TAGS))


def _model_on_disk(client: Client, workdir: Path) -> None:
    blob = workdir / "models" / "tiny-q4.gguf"
    blob.parent.mkdir(parents=True, exist_ok=True)
    data = b"GGUF" + bytes(range(256)) * 4
    blob.write_bytes(data)
    spec = CatalogModelCreate(
        id="tiny-q4",
        model_ref=f"file:{blob}",
        source=f"file:{blob}",
        files=[CatalogFileSpec(path=str(blob), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))],
    )
    with suppress(ConflictError):
        client.create_model(spec)


STATES: dict[str, ProviderState] = {
    "": ProviderState(FAST),
    names.QUEUE_FULL: ProviderState(SLOW, _queue_full),
    names.POOL_BUSY: ProviderState(SLOW, _pool_busy),
    names.TASK_FINISHED: ProviderState(FAST, _task_finished),
    names.TASK_RUNNING: ProviderState(SLOW, _task_running),
    names.SESSION_EXISTS: ProviderState(FAST, _session_exists),
    names.POOL_DRAINING: ProviderState(FAST, _pool_draining),
    names.SMALL_BODIES: ProviderState(SMALL_BODY_LIMIT),
    names.PLAN_STORED: ProviderState(FAST, _plan_stored),
    names.MODEL_ON_DISK: ProviderState(FAST, _model_on_disk),
}


@contextmanager
def state_endpoint(setup: Callable[[str], None]) -> Iterator[tuple[str, list[str]]]:
    """An HTTP endpoint on 127.0.0.1 for the verifier's provider-state calls.

    Yields its URL and the list of setup failures. The verifier POSTs ``{"state": …, "action":
    "setup"|"teardown", "params": {…}}`` before each interaction; ``setup(state)`` runs for
    setups. A failing setup is recorded and answered 422, which fails the interaction at once (a
    5xx the verifier would retry, with backoff, for minutes).
    """
    failures: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            state = request.get("state") or ""
            try:
                if request.get("action", "setup") == "setup":
                    setup(state)
            except Exception as exc:
                failures.append(f"{state!r}: {type(exc).__name__}: {exc}")
                self.send_error(422, "provider state setup failed")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="pact-provider-states", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/_pact/provider-states", failures
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
