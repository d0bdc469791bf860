"""AsyncClient against a real orchestratord on loopback: every endpoint, errors, retries, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from llama_orch.client import (
    AsyncClient,
    DeadlineUnmetError,
    IncompatibleServerError,
    InvalidParamsError,
    MaxTokensExceededError,
    NotFoundError,
    RetryPolicy,
    StreamInterruptedError,
    TaskCancelledError,
    UnknownPoolError,
    last_response,
)
from llama_orch.engines.mock import MockSettings
from llama_orch.server.config import OrchestratorConfig
from llama_orch_api import (
    ArtifactKind,
    CatalogFileSpec,
    CatalogModelCreate,
    EndEvent,
    ErrorEnvelope,
    ModelState,
    StartedEvent,
    TokenEvent,
)
from tests.client._proxy import CuttingProxy
from tests.conftest import Serve, fast_config


class Counting(httpx.AsyncBaseTransport):
    """Counts requests per (method, path) on their way to a real transport."""

    def __init__(self, keepalive: bool = True) -> None:
        limits = httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0)
        self.inner = httpx.AsyncHTTPTransport(limits=limits)
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, path: str) -> int:
        return self.seen.count((method, path))


def slow_config(tokens_per_s: float = 50, **pool: object) -> OrchestratorConfig:
    return fast_config(mock=MockSettings(tokens_per_s=tokens_per_s, first_token_ms=1, slots=2), **pool)


async def test_tasks_stream_sessions_and_discovery_round_trip(serve: Serve) -> None:
    base = await serve(fast_config())
    async with AsyncClient(base) as client:
        caps = await client.capabilities()
        assert caps.api_version == client.server_api_version == "0.1.0"
        pool = caps.pools[0]
        assert client.limiter is not None and client.limiter.ceiling == pool.concurrency + pool.queue_capacity

        async with await client.submit(prompt="hello", max_tokens=6, seed=3, session_id="s-1") as task:
            assert task.admission.pool == "default"
            events = [event async for event in task.astream()]
        names = [e.event for e in events]
        assert names[0] == "metrics" and "started" in names and names[-1] == "end"
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        tokens = [e.data.t for e in events if isinstance(e.data, TokenEvent)]
        assert len(tokens) == 6 and task.text_so_far == "".join(tokens)
        assert isinstance(task.outcome, EndEvent) and task.outcome.tokens_out == 6
        assert isinstance(task.started, StartedEvent)

        # Same seed, same text (determinism); the plain admission call and a separate stream.
        admission = await client.create_task(prompt="hello", max_tokens=6, seed=3)
        again = [e async for e in client.astream(admission.task_id)]
        assert "".join(e.data.t for e in again if isinstance(e.data, TokenEvent)) == "".join(tokens)
        resumed = [e async for e in client.astream(admission.task_id, last_event_id=len(again) - 2)]
        assert [e.id for e in resumed] == [len(again) - 1, len(again)]

        session = await client.get_session("s-1")
        assert session.session_id == "s-1" and session.turns == 1 and session.tokens_used == 6
        await client.delete_session("s-1")
        with pytest.raises(NotFoundError):
            await client.get_session("s-1")

        result = await client.run(prompt="bye", max_tokens=3)
        assert result.end.tokens_out == 3 and len(result.text) > 0

        (replicaset,) = (await client.replicasets()).replicasets
        assert replicaset.pool == "default" and replicaset.slots_total == 2
        health = await client.pool_health("default")
        assert health.ready and health.state == "ready"
        assert client.limiter.stats().in_flight == 0


async def test_cancel_ends_the_stream_with_cancelled(serve: Serve) -> None:
    base = await serve(slow_config(tokens_per_s=20))
    async with AsyncClient(base) as client:
        async with await client.submit(prompt="long", max_tokens=500) as task:
            stream = task.astream()
            async for event in stream:
                if event.event == "token":
                    break
            await stream.aclose()
            await task.cancel()
            with pytest.raises(TaskCancelledError) as caught:
                async for _ in task.astream():
                    pass
        assert caught.value.status is None and caught.value.task_id == task.task_id
        assert task.error_code == "CANCELLED"
        # raise_on_error=False: the error event is the last one yielded.
        events = [e async for e in client.astream(task.task_id, raise_on_error=False)]
        assert isinstance(events[-1].data, ErrorEnvelope) and events[-1].data.code == "CANCELLED"
        assert client.limiter is not None and client.limiter.in_flight == 0


async def test_pools_drain_and_reload(serve: Serve) -> None:
    base = await serve(fast_config())
    async with AsyncClient(base) as client:
        drained = await client.drain_pool("default", deadline_ms=1000)
        assert drained.operation == "drain" and drained.state == "drained"
        assert (await client.pool_health("default")).state == "drained"
        reloaded = await client.reload_pool("default", "mock:other", deadline_ms=10_000)
        assert reloaded.state == "ready" and reloaded.model_ref == "mock:other"
        assert reloaded.previous_model_ref == "mock:tiny"


async def test_artifacts_round_trip(serve: Serve) -> None:
    base = await serve(fast_config())
    async with AsyncClient(base) as client:
        plan = await client.put_artifact(kind="plan", content="# Plan", tags=["loop:1"], media_type="text/markdown")
        diff = await client.put_artifact(kind=ArtifactKind.diff, content={"files": 1}, parent=plan.id, tags=["loop:1"])
        assert plan.id.startswith("sha256:") and diff.parent == plan.id
        got = await client.get_artifact(diff.id)
        assert got.content == {"files": 1} and got.media_type == "application/json"
        listed = await client.list_artifacts(tags=["loop:1"], limit=1)
        assert [a.id for a in listed.artifacts] == [diff.id] and listed.next_cursor is not None
        rest = await client.list_artifacts(tags=["loop:1"], cursor=listed.next_cursor)
        assert [a.id for a in rest.artifacts] == [plan.id]
        lineage = await client.artifact_lineage(diff.id)
        assert lineage.root == plan.id and [a.id for a in lineage.ancestors] == [plan.id]
        with pytest.raises(NotFoundError):
            await client.get_artifact("sha256:" + "0" * 64)


async def test_catalog_round_trip(serve: Serve, tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    spec = CatalogModelCreate(
        id="tiny-v1",
        model_ref="mock:other",
        source=f"file:{model}",
        files=[CatalogFileSpec(path=str(model), sha256=hashlib.sha256(model.read_bytes()).hexdigest(), size_bytes=64)],
    )
    base = await serve(fast_config())
    async with AsyncClient(base) as client:
        created = await client.create_model(spec)
        assert created.id == "tiny-v1" and created.state == ModelState.Active
        assert [m.id for m in (await client.list_models()).models] == ["tiny-v1"]
        assert (await client.list_models(state="Retired")).models == []
        assert (await client.get_model("tiny-v1")).model_ref == "mock:other"
        verified = await client.verify_model("tiny-v1")
        assert verified.status.value == "verified" and verified.checked_at is not None
        retired = await client.set_model_state("tiny-v1", ModelState.Retired, reason="superseded")
        assert retired.state == ModelState.Retired and retired.state_reason == "superseded"
        await client.delete_model("tiny-v1")
        with pytest.raises(NotFoundError):
            await client.get_model("tiny-v1")


async def test_correlation_ids_per_call_default_and_on_errors(serve: Serve) -> None:
    base = await serve(fast_config())
    async with AsyncClient(base, correlation_id="run-7") as client:
        await client.replicasets()
        info = last_response()
        assert info is not None and info.correlation_id == "run-7" and info.status == 200
        await client.replicasets(correlation_id="run-7.step-2")
        assert (last := last_response()) is not None and last.correlation_id == "run-7.step-2"
        task = await client.submit(prompt="x", max_tokens=1, correlation_id="run-7.step-3")
        assert task.correlation_id == "run-7.step-3"
        await task.result()
        with pytest.raises(UnknownPoolError) as caught:
            await client.submit(prompt="x", pool="nope", correlation_id="run-7.step-4")
        assert caught.value.correlation_id == "run-7.step-4" and caught.value.status == 400
    async with AsyncClient(base) as client:  # generated per call when none is configured
        await client.replicasets()
        first = last_response()
        await client.replicasets()
        second = last_response()
        assert first and second and first.correlation_id and first.correlation_id != second.correlation_id


async def test_typed_errors_and_retries_stop_on_non_retriable(serve: Serve) -> None:
    base = await serve(fast_config(max_tokens=64))
    transport = Counting()
    async with AsyncClient(base, transport=transport, retry=RetryPolicy(max_attempts=5, base_delay_s=0.01)) as client:
        with pytest.raises(MaxTokensExceededError) as too_many:
            await client.submit(prompt="x", max_tokens=65)
        assert too_many.value.status == 400 and not too_many.value.retriable
        with pytest.raises(InvalidParamsError) as bad_profile:
            await client.submit(prompt="x", sampler_profile_version="nope@1")
        assert "known_profiles" in (bad_profile.value.details or {})
        with pytest.raises(NotFoundError):
            await client.cancel("no-such-task")
        with pytest.raises(NotFoundError):
            await client.get_session("nobody")
    assert transport.count("POST", "/v1/tasks") == 2
    assert transport.count("POST", "/v1/tasks/no-such-task/cancel") == 1
    assert transport.count("GET", "/v1/sessions/nobody") == 1
    assert transport.count("GET", "/v1/capabilities") == 1  # the version check, once


async def test_retriable_errors_are_retried_as_often_as_allowed(serve: Serve) -> None:
    base = await serve(slow_config(tokens_per_s=5, queue={"capacity": 1}))
    transport = Counting()
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
    async with AsyncClient(base, transport=transport, retry=policy, limiter=None) as client:
        await client.create_task(prompt="a", max_tokens=100)
        await client.create_task(prompt="b", max_tokens=100)
        await client.create_task(prompt="c", max_tokens=100)  # two slots busy, the queue's one place taken
        with pytest.raises(DeadlineUnmetError) as caught:
            await client.create_task(prompt="d", max_tokens=1, deadline_ms=1)
    assert caught.value.retriable and caught.value.status == 429
    assert transport.count("POST", "/v1/tasks") == 3 + 3


async def test_an_incompatible_server_fails_before_anything_is_sent(serve: Serve) -> None:
    base = await serve(fast_config())
    transport = Counting()
    async with AsyncClient(base, api_versions=">=0.2,<0.3", transport=transport) as client:
        with pytest.raises(IncompatibleServerError, match=r"0\.1\.0.*>=0\.2,<0\.3"):
            await client.submit(prompt="x")
        with pytest.raises(IncompatibleServerError):
            await client.replicasets()
    assert transport.count("POST", "/v1/tasks") == 0
    async with AsyncClient(base, api_versions=">=0.2", check_api_version=False) as client:
        assert (await client.replicasets()).replicasets  # pinning off: for mock servers


async def test_a_dropped_stream_resumes_with_last_event_id(serve: Serve) -> None:
    base = await serve(slow_config(tokens_per_s=200))
    async with CuttingProxy(base, cut_streams=2, cut_after=700) as proxy:
        transport = Counting(keepalive=False)
        async with AsyncClient(proxy.url, transport=transport, retry=RetryPolicy(base_delay_s=0.01)) as client:
            result = await client.run(prompt="resume me", max_tokens=40, seed=1)
            reference = await client.run(prompt="resume me", max_tokens=40, seed=1)
    assert result.text == reference.text and result.end.tokens_out == 40
    heads = proxy.stream_heads
    assert len(heads) >= 4  # 3 for the first task (2 cut), 1 for the reference
    assert b"last-event-id" not in heads[0].lower()
    assert b"last-event-id: " in heads[1].lower() and b"last-event-id: " in heads[2].lower()


async def test_a_stream_that_keeps_dropping_gives_up(serve: Serve) -> None:
    base = await serve(slow_config(tokens_per_s=100))
    async with CuttingProxy(base, cut_streams=100, cut_after=400) as proxy:
        transport = Counting(keepalive=False)
        async with AsyncClient(
            proxy.url, transport=transport, stream_reconnects=2, retry=RetryPolicy(base_delay_s=0.01)
        ) as client:
            task = await client.submit(prompt="x", max_tokens=200)
            with pytest.raises(StreamInterruptedError) as caught:
                await task.result()
            await task.cancel()
            task.close()
    assert caught.value.task_id == task.task_id
    assert len(proxy.stream_heads) == 3  # the first try and two reconnects
