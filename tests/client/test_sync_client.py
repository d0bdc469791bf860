"""The blocking Client against a real orchestratord on loopback (hosted in a thread)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import httpx
import pytest

from llama_orch.client import (
    Client,
    IncompatibleServerError,
    NotFoundError,
    RetryPolicy,
    ServerUnreachableError,
    TaskCancelledError,
    UnknownModelError,
    last_response,
)
from llama_orch.engines.mock import MockSettings
from llama_orch_api import CatalogFileSpec, CatalogModelCreate, ModelState, TaskRequest, TokenEvent
from tests.client._proxy import CuttingProxy
from tests.client.conftest import LiveServer
from tests.conftest import Serve, fast_config, free_port


class Counting(httpx.BaseTransport):
    def __init__(self, keepalive: bool = True) -> None:
        limits = httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0)
        self.inner = httpx.HTTPTransport(limits=limits)
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_every_endpoint_round_trips(live_server: LiveServer, tmp_path: Path) -> None:
    base = live_server(fast_config())
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(12))
    with Client(base, correlation_id="sync-1") as client:
        assert client.capabilities().pools[0].id == "default"
        with client.submit(TaskRequest(prompt="hi", max_tokens=4, seed=9, session_id="s")) as task:
            tokens = [e.data.t for e in task.stream() if isinstance(e.data, TokenEvent)]
        assert len(tokens) == 4 and task.correlation_id == "sync-1"
        assert client.run(prompt="hi", max_tokens=4, seed=9).text == "".join(tokens)
        admission = client.create_task(prompt="hi", max_tokens=2)
        assert [e.event for e in client.stream(admission.task_id)][-1] == "end"
        client.cancel(admission.task_id)  # already finished: a no-op
        assert client.get_session("s").turns == 1
        client.delete_session("s")
        assert client.replicasets().replicasets[0].slots_total == 2
        assert client.pool_health("default").state == "ready"
        assert client.drain_pool("default", deadline_ms=500).state == "drained"
        assert client.reload_pool("default", "mock:tiny").state == "ready"
        ref = client.put_artifact(kind="summary", content="done", tags=["t"])
        child = client.put_artifact(kind="other", content=[1, 2], parent=ref.id)
        assert client.get_artifact(child.id).content == [1, 2]
        assert [a.id for a in client.list_artifacts(tags=["t"]).artifacts] == [ref.id]
        assert client.artifact_lineage(child.id).root == ref.id
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        spec = CatalogModelCreate(
            id="m", model_ref="mock:m", source=f"file:{model}",
            files=[CatalogFileSpec(path=str(model), sha256=digest, size_bytes=16)],
        )  # fmt: skip
        assert client.create_model(spec).state == ModelState.Active
        assert [m.id for m in client.list_models(state=ModelState.Active).models] == ["m"]
        assert client.get_model("m").files[0].sha256 == digest
        assert client.verify_model("m").status.value == "verified"
        assert client.set_model_state("m", "Retired").state == ModelState.Retired
        client.delete_model("m")
        assert (info := last_response()) is not None and info.correlation_id == "sync-1" and info.status == 204
        with pytest.raises(NotFoundError):
            client.get_model("m")


def test_ctrl_c_style_cancel_from_another_thread(live_server: LiveServer) -> None:
    base = live_server(fast_config(mock=MockSettings(tokens_per_s=20, first_token_ms=1, slots=1)))
    with Client(base) as client, client.submit(prompt="long", max_tokens=1000) as task:
        seen: list[str] = []
        cancellers: list[threading.Thread] = []

        def consume() -> None:
            for event in task.stream():
                seen.append(event.event)
                if event.event == "token" and seen.count("token") == 2:
                    cancellers.append(threading.Thread(target=client.cancel, args=(task.task_id,)))
                    cancellers[-1].start()

        with pytest.raises(TaskCancelledError):
            consume()
        # the stream can see the cancellation before the cancelling call has read its answer:
        # the client must stay open until that call is done
        for thread in cancellers:
            thread.join(timeout=30)
        assert len(cancellers) == 1 and not cancellers[0].is_alive()
        assert seen.count("token") >= 2 and task.error_code == "CANCELLED"
        assert client.limiter is not None and client.limiter.in_flight == 0


def test_non_retriable_errors_are_sent_once(live_server: LiveServer) -> None:
    base = live_server(fast_config())
    transport = Counting()
    with Client(base, transport=transport, retry=RetryPolicy(max_attempts=5, base_delay_s=0.01)) as client:
        with pytest.raises(UnknownModelError):
            client.submit(prompt="x", model_ref="mock:nope")
        with pytest.raises(NotFoundError):
            client.pool_health("nope")
    assert transport.seen.count(("POST", "/v1/tasks")) == 1
    assert transport.seen.count(("GET", "/v1/pools/nope/health")) == 1


def test_an_unreachable_server_is_retried_then_reported() -> None:
    port = free_port()
    transport = Counting()
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01)
    client = Client(f"http://127.0.0.1:{port}", transport=transport, retry=policy)
    with client, pytest.raises(ServerUnreachableError, match=f"127.0.0.1:{port}"):
        client.replicasets()
    assert transport.seen == [("GET", "/v1/capabilities")] * 3


def test_an_incompatible_server(live_server: LiveServer) -> None:
    base = live_server(fast_config())
    with Client(base, api_versions=">=1.0") as client, pytest.raises(IncompatibleServerError) as caught:
        client.run(prompt="x")
    assert caught.value.server_version == "0.1.0" and caught.value.supported == ">=1.0"


def test_threads_share_one_client_and_its_limit(live_server: LiveServer) -> None:
    mock = MockSettings(tokens_per_s=200, first_token_ms=1, slots=2)
    base = live_server(fast_config(mock=mock, queue={"capacity": 2}))
    errors: list[BaseException] = []
    with Client(base, retry=RetryPolicy(max_attempts=200, base_delay_s=0.005, max_delay_s=0.2)) as client:

        def work(n: int) -> None:
            try:
                for i in range(5):
                    assert client.run(prompt=f"{n}/{i}", max_tokens=3).end.tokens_out == 3
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        stats = client.limiter.stats() if client.limiter is not None else None
    assert stats is not None and stats.in_flight == 0 and stats.admitted == 30
    assert stats.peak_in_flight <= 2 + 2  # the ceiling: slots plus queue places


async def test_sync_stream_resumes_after_a_drop(serve: Serve) -> None:
    base = await serve(fast_config(mock=MockSettings(tokens_per_s=200, first_token_ms=1, slots=2)))
    async with CuttingProxy(base, cut_streams=1, cut_after=600) as proxy:

        def run() -> tuple[str, str]:
            transport = Counting(keepalive=False)
            with Client(proxy.url, transport=transport, retry=RetryPolicy(base_delay_s=0.01)) as client:
                first = client.run(prompt="p", max_tokens=30, seed=2).text
                return first, client.run(prompt="p", max_tokens=30, seed=2).text

        cut, whole = await asyncio.to_thread(run)
    assert cut == whole
    assert b"last-event-id" in proxy.stream_heads[1].lower()
