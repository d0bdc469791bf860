"""TGIEngine: what is particular to it. The cases every adapter meets (stream, cancel, every row
of its error table, against responses in TGI's wire format) are in test_conformance.py.

Here: special tokens are not text, a final token that is text is, error objects of odd shapes, the
sampling parameters TGI accepts, ``fetch_info`` and health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from llama_orch.engines import TGIEngine
from llama_orch_api import ErrorCode
from tests.engines._fake import (
    Expect,
    Handler,
    StartFake,
    check,
    collect,
    collect_until_error,
    reply,
    req,
    sse,
    sse_event,
)

GENERATE = "POST /generate_stream"

Connect = Callable[..., Awaitable[TGIEngine]]


@pytest.fixture
def connect(started: Callable[[TGIEngine], Awaitable[TGIEngine]]) -> Connect:
    async def _connect(base_url: str, **options: Any) -> TGIEngine:
        return await started(TGIEngine(base_url, **options))

    return _connect


_ids = iter(range(1_000_000))


def token(text: str, *, special: bool = False, generated_text: str | None = None) -> bytes:
    details = {"finish_reason": "eos_token", "generated_tokens": 3, "seed": None} if generated_text else None
    event = {
        "index": next(_ids),
        "token": {"id": 100 + len(text), "text": text, "logprob": -0.25, "special": special},
        "generated_text": generated_text,
        "details": details,
        "top_tokens": None,
    }
    return sse_event(event, space=False)  # TGI (axum) writes "data:" with no space


def final(text: str = "</s>", generated_text: str = "ab") -> bytes:
    return token(text, special=True, generated_text=generated_text)


def tgi_error(message: str, error_type: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def status(code: int, message: str, error_type: str, **headers: str) -> Handler:
    return reply(tgi_error(message, error_type), code, {k.replace("_", "-"): v for k, v in headers.items()})


def in_stream(message: str, error_type: str) -> bytes:
    return sse_event(tgi_error(message, error_type), space=False)


async def test_special_tokens_are_not_text(fake_server: StartFake, connect: Connect) -> None:
    special = token("<start_of_turn>", special=True), token("<sep>", special=True)
    stream = sse(special[0], token("Hel"), special[1], token("lo"), final())
    fake = await fake_server({GENERATE: stream})
    assert await collect(await connect(fake.base_url), req()) == ["Hel", "lo"]


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        # An error_type that is not a string: an error all the same, of no known type.
        pytest.param(
            sse(sse_event({"error": "odd", "error_type": ["overloaded"]})),
            Expect(ErrorCode.ENGINE_ERROR, False, None, says="odd"),
            id="stream-odd-error-type",
        ),
        pytest.param(
            reply({"error": "odd", "error_type": {"k": 1}}, 429),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 1000, says="odd"),
            id="429-odd-error-type",
        ),
        pytest.param(
            status(429, "Model is overloaded", "overloaded", retry_after="4"),
            Expect(ErrorCode.POOL_UNAVAILABLE, True, 4000, says="Model is overloaded"),
            id="429-overloaded-retry-after",
        ),
    ],
)
async def test_error_objects_of_odd_shapes(
    fake_server: StartFake, connect: Connect, handler: Handler, expect: Expect
) -> None:
    fake = await fake_server({GENERATE: handler})
    got, err = await collect_until_error(await connect(fake.base_url), req())
    check(got, err, expect, "tgi")


async def test_a_final_token_that_is_text_is_delivered(fake_server: StartFake, connect: Connect) -> None:
    # Stopped by max_new_tokens: the last token is ordinary text.
    fake = await fake_server({GENERATE: sse(token("a"), token("b", generated_text="ab"))})
    engine = await connect(fake.base_url)
    assert await collect(engine, req()) == ["a", "b"]


@pytest.mark.parametrize(
    ("request_kw", "parameters"),
    [
        pytest.param(
            {"seed": 42, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
            {"do_sample": True, "seed": 42, "temperature": 0.7, "top_p": 0.9, "top_k": 40},
            id="sampled",
        ),
        # TGI refuses top_p == 1 and top_k == 0: they restrict nothing and are left out.
        pytest.param(
            {"seed": 5, "temperature": 1.2, "top_p": 1.0, "top_k": 0},
            {"do_sample": True, "seed": 5, "temperature": 1.2},
            id="sampled-unrestricted",
        ),
        # Greedy: TGI refuses temperature 0 and samples whenever a sampling field is set.
        pytest.param({"seed": 0, "top_p": 0.5, "top_k": 3}, {"do_sample": False, "seed": 0}, id="greedy"),
        pytest.param({"seed": None}, {"do_sample": False}, id="no-seed"),
    ],
)
async def test_request_payload(
    fake_server: StartFake, connect: Connect, request_kw: dict[str, Any], parameters: dict[str, Any]
) -> None:
    fake = await fake_server({GENERATE: sse(final())})
    engine = await connect(fake.base_url)
    await collect(engine, req(prompt="p", max_tokens=12, **request_kw))
    (body,) = fake.bodies(GENERATE)
    assert body == {"inputs": "p", "parameters": {"max_new_tokens": 12, **parameters}}


async def test_health_describe_and_fetch_info(fake_server: StartFake, connect: Connect) -> None:
    info_body = {
        "model_id": "google/gemma-3-270m",
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": 4095,
        "max_total_tokens": 4096,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": "3.3.4",
        "sha": None,
        "docker_label": None,
    }
    fake = await fake_server({"GET /health": reply(None), "GET /info": reply(info_body)})
    engine = await connect(fake.base_url, slots=2, ctx_max=1024)
    assert await engine.health() is True
    assert (engine.describe().engine, engine.describe().slots, engine.describe().ctx_max) == ("tgi", 2, 1024)
    info = await engine.fetch_info()
    assert (info.version, info.ctx_max, info.slots) == ("3.3.4", 4096, 128)
    assert engine.describe() == info
    assert engine.model_id == "google/gemma-3-270m"


async def test_health_false_while_no_shard_is_ready(fake_server: StartFake, connect: Connect) -> None:
    fake = await fake_server({"GET /health": reply(tgi_error("unhealthy", "healthcheck"), 503)})
    assert await (await connect(fake.base_url)).health() is False
