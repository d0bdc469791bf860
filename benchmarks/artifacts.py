"""Artifact store throughput: writes/s and reads/s at 1 KB and 1 MB, store alone vs over HTTP.

``python -m benchmarks.artifacts [--quick] [--out PATH]``

Two ways of doing the same work, in the same run, on the same cores:

- **store**: :class:`llama_orch.artifacts.ArtifactStore` alone, in a child process pinned to the
  server CPU (the baseline: SQLite, blob writes with fsync, canonical JSON, hashing);
- **http**: a real ``orchestratord`` on 127.0.0.1 (its own process, pinned to the server CPU, fresh
  ``--data-dir``), driven by an aiohttp client process pinned to the load CPU:
  ``POST /v1/artifacts`` then ``GET /v1/artifacts/{id}``.

Each write stores new content (a counter at the front of a fixed filler, so nothing dedupes); reads
fetch the artifacts just written, with their content. ``--concurrency`` operations are in flight at
once. Every phase is bounded in count and in time; every process started is stopped by its pid.
Numbers: ops/s = completed operations / phase wall time; p50/p99 = per-operation latency;
**http/store** = the HTTP rate as a fraction of the store-alone rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    HOST,
    PYTHON,
    Cpus,
    cpu_seconds,
    free_port,
    percentile,
    pick_cpus,
    run_json,
    running,
    venv_tool,
)

SIZES = {"1KB": 1024, "1MB": 1024 * 1024}
# (max writes, max reads) per size; phases also stop at --seconds.
COUNTS = {"1KB": (4000, 4000), "1MB": (120, 240)}


def _content(size: int, i: int) -> str:
    filler = "abcdefghijklmnopqrstuvwxyz0123456789 " * (size // 37 + 1)
    return (f"{i:010d}" + filler)[:size]


async def _phase(
    op: Callable[[int], Awaitable[None]], count: int, seconds: float, concurrency: int
) -> dict[str, float]:
    """Run ``op(i)`` for i = 0..count-1 with ``concurrency`` in flight, stopping early at ``seconds``."""
    latencies: list[float] = []
    next_i = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal next_i
        while next_i < count and time.perf_counter() < deadline:
            i = next_i
            next_i += 1
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "ops": len(latencies),
        "per_s": len(latencies) / wall if wall else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "wall_s": wall,
    }


async def _child_store(args: argparse.Namespace) -> dict[str, Any]:
    from llama_orch.artifacts import ArtifactStore

    ids: list[str] = []
    async with ArtifactStore(args.data_dir, max_bytes=32 << 20) as store:

        async def write(i: int) -> None:
            ref = await store.put(kind="diff", content=_content(args.size, i), tags=["bench"])
            ids.append(ref.id)

        async def read(i: int) -> None:
            artifact = await store.get(ids[i % len(ids)])
            assert len(artifact.content) == args.size  # type: ignore[arg-type]

        writes = await _phase(write, args.writes, args.seconds, args.concurrency)
        reads = await _phase(read, args.reads, args.seconds, args.concurrency)
    return {"writes": writes, "reads": reads}


async def _child_http(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    ids: list[str] = []
    head, tail = b'{"kind":"diff","tags":["bench"],"content":"', b'"}'
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(args.base, connector=connector) as http:

        async def write(i: int) -> None:
            body = head + _content(args.size, i).encode() + tail
            async with http.post("/v1/artifacts", data=body, headers=headers) as resp:
                ref = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"POST answered {resp.status}: {ref}")
            ids.append(ref["id"])

        async def read(i: int) -> None:
            async with http.get(f"/v1/artifacts/{ids[i % len(ids)]}") as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET answered {resp.status}: {data[:200]!r}")
            if len(data) < args.size:
                raise RuntimeError("GET answered less than the content")

        writes = await _phase(write, args.writes, args.seconds, args.concurrency)
        reads = await _phase(read, args.reads, args.seconds, args.concurrency)
    return {"writes": writes, "reads": reads}


def _child(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    runner = _child_store if args.child == "store" else _child_http
    result = asyncio.run(runner(args))
    result["cpu_pct"] = 100 * (time.process_time() - cpu0) / (time.perf_counter() - t0)
    print(json.dumps(result))


def _child_argv(mode: str, size: int, writes: int, reads: int, args: argparse.Namespace, **extra: str) -> list[str]:
    argv = [PYTHON, "-m", "benchmarks.artifacts", "--child", mode, "--size", str(size)]
    argv += ["--writes", str(writes), "--reads", str(reads), "--seconds", str(args.seconds)]
    argv += ["--concurrency", str(args.concurrency)]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return argv


def run(args: argparse.Namespace, cpus: Cpus | None = None) -> dict[str, Any]:
    cpus = cpus or pick_cpus()
    scale = 0.25 if args.quick else 1.0
    results: dict[str, Any] = {"cpus": cpus.describe(), "concurrency": args.concurrency, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="llorch-bench-artifacts-") as tmp:
        tmpdir = Path(tmp)
        log_dir = tmpdir / "logs"
        log_dir.mkdir()
        for label, size in SIZES.items():
            writes, reads = (max(20, int(n * scale)) for n in COUNTS[label])
            results["sizes"][label] = {
                "store": run_json(
                    f"store-{label}",
                    _child_argv("store", size, writes, reads, args, data_dir=str(tmpdir / f"store-{label}")),
                    cpu=cpus.server,
                    log_dir=log_dir,
                    timeout_s=4 * args.seconds + 60,
                )
            }
        port = free_port()
        base = f"http://{HOST}:{port}"
        # A mock pool: the artifact routes are what is measured, not an engine.
        config = tmpdir / "orch.yaml"
        config.write_text("pools:\n  - id: default\n    engine: mock\n")
        argv = [venv_tool("orchestratord"), "--config", str(config), "--host", HOST, "--port", str(port)]
        argv += ["--data-dir", str(tmpdir / "orch")]
        with running("orchestratord", argv, cpu=cpus.server, log_dir=log_dir, ready_url=f"{base}/healthz") as orch:
            for label, size in SIZES.items():
                writes, reads = (max(20, int(n * scale)) for n in COUNTS[label])
                cpu0, t0 = cpu_seconds(orch.pid), time.perf_counter()
                http = run_json(
                    f"http-{label}",
                    _child_argv("http", size, writes, reads, args, base=base),
                    cpu=cpus.load,
                    log_dir=log_dir,
                    timeout_s=4 * args.seconds + 60,
                )
                http["server_cpu_pct"] = 100 * (cpu_seconds(orch.pid) - cpu0) / (time.perf_counter() - t0)
                results["sizes"][label]["http"] = http
    return results


def _table(results: dict[str, Any]) -> str:
    lines = [
        f"artifact store, {results['concurrency']} in flight; {results['cpus']}",
        f"{'size':<5} {'op':<6} {'store ops/s':>12} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'http ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'http/store':>11}",
    ]
    for label, by_mode in results["sizes"].items():
        for op in ("writes", "reads"):
            s, h = by_mode["store"][op], by_mode["http"][op]
            ratio = h["per_s"] / s["per_s"] if s["per_s"] else float("nan")
            lines.append(
                f"{label:<5} {op:<6} {s['per_s']:>12.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
                f" {h['per_s']:>11.0f} {h['p50_ms']:>8.2f} {h['p99_ms']:>8.2f} {ratio:>11.2f}"
            )
    return "\n".join(lines)


def run_section(quick: bool, cpus: Cpus) -> dict[str, Any]:
    """Entry for ``scripts/bench`` (section ``artifacts``): default parameters, the driver's CPU layout."""
    return run(argparse.Namespace(quick=quick, seconds=5.0, concurrency=8), cpus)


def report(results: dict[str, Any]) -> str:
    return (
        "ARTIFACTS  writes/s and reads/s at 1 KB and 1 MB: the store alone vs through orchestratord's API\n"
        + "\n".join("  " + line for line in _table(results).splitlines())
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.artifacts", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the operations (noisier)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound of each phase")
    parser.add_argument("--concurrency", type=int, default=8, help="operations in flight at once")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    # Internal: the measuring children.
    parser.add_argument("--child", choices=["store", "http"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--writes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    results = run(args)
    print(_table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
