"""``orchestratord --demo PROMPT``: once the server listens, stream one completion through its own
HTTP API to stdout, as any client would, then keep serving. ``scripts/run`` uses it so the first
thing a new operator sees is the embedded model answering.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

import aiohttp

DEMO_MAX_TOKENS = 64
_TIMEOUT = aiohttp.ClientTimeout(total=600, sock_connect=10)


async def stream_demo(base_url: str, prompt: str, *, out: TextIO = sys.stdout, seed: int = 7) -> bool:
    """Submit ``prompt`` and write its tokens to ``out`` as they arrive; True when it ended well."""
    try:
        return await _stream(base_url, prompt, out, seed)
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        print(f"\norchestratord: demo failed: {type(exc).__name__}: {exc}", file=out, flush=True)
        return False


async def _stream(base_url: str, prompt: str, out: TextIO, seed: int) -> bool:
    began = time.monotonic()
    body = {"prompt": prompt, "max_tokens": DEMO_MAX_TOKENS, "seed": seed}
    token = os.environ.get("LLORCH_TOKEN")  # with auth on, the demo needs a token with the data scope
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with aiohttp.ClientSession(base_url, timeout=_TIMEOUT, headers=headers) as http:
        async with http.post("/v1/tasks", json=body) as resp:
            answer: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 202:
                print(f"orchestratord: demo refused ({resp.status} {answer.get('code')}): {answer.get('message')}",
                      file=out, flush=True)  # fmt: skip
                return False
        print(f"orchestratord: demo on pool {answer['pool']!r} > {prompt}", file=out, flush=True)
        first: float | None = None
        tokens = 0
        event = ""
        async with http.get(answer["stream_url"]) as stream:
            async for raw in stream.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("token", "end", "error"):
                    data = json.loads(line[5:])
                    if event == "token":
                        first = first or time.monotonic()
                        tokens += 1
                        out.write(data["t"])
                        out.flush()
                    elif event == "error":
                        print(f"\norchestratord: demo failed: {data['code']}: {data['message']}", file=out, flush=True)
                        return False
                    else:
                        took = time.monotonic() - began
                        ttft = f"{(first - began) * 1000:.0f} ms" if first else "-"
                        print(f"\norchestratord: demo done: {tokens} tokens in {took:.1f} s (first token after {ttft})",
                              file=out, flush=True)  # fmt: skip
                        return True
    print("\norchestratord: demo stream ended early", file=out, flush=True)
    return False
