"""The shared SSE parser against the two parsers it replaced, on the streams each one read.

``python -m benchmarks.sse_parse [--quick]`` (about 20 s; ``--quick`` about 5 s)

One process, one core, no network: each parser is fed the same bytes, cut into the same network
reads, and every event's data is decoded with ``json.loads`` as its reader does. Workloads:

- ``engine, 1 event/read``: llama.cpp ``/completion`` token events, one per read (a paced stream);
- ``engine, 16 events/read``: the same events, 16 to a read (a fast engine; the relay's batches);
- ``orchestratord, 8 events/read``: our own ``id:``/``event: token``/``data:`` frames, as the SDK
  reads a task stream.

Baselines, measured in the same run on the same bytes: the engine adapters' byte-splitting
``SseDecoder`` (``engines/_http.py`` before the parsers were merged; it did not handle lone CR
line endings) and the SDK's previous ``SSEParser`` (``client/_sse.py``, which searched the buffer
for CR and LF line by line). Reported: events per second (median of the rounds) and the ratio
new / baseline; above 1.0 the shared parser is faster.
"""

from __future__ import annotations

import argparse
import codecs
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from llama_orch._wire import SSEParser

Parse = Callable[[list[bytes]], int]


# -- the baselines, as they were ---------------------------------------------------------------


class _EngineDecoder:
    """``engines._http.SseDecoder`` before the merge: bytes in, each event's data bytes out."""

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        events: list[bytes] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        return events


class _ClientParser:
    """``client._sse.SSEParser`` before the merge (CR/LF found line by line), reduced to its data."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        buffer = self._buffer + text
        events: list[tuple[str, str, str | None]] = []
        start, size = 0, len(buffer)
        while start < size:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            else:
                end = cr
                if cr + 1 < size:
                    next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
                else:
                    next_start = cr + 1
                    self._skip_lf = True
            line = buffer[start:end]
            start = next_start
            if not line:
                if self._has_data:
                    events.append((self._event or "message", "\n".join(self._data), self.last_event_id))
                self._event, self._data, self._has_data = "", [], False
                continue
            if line.startswith(":"):
                continue
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                self._data.append(value)
                self._has_data = True
            elif name == "event":
                self._event = value
            elif name == "id" and "\x00" not in value:
                self.last_event_id = value
        self._buffer = buffer[start:]
        return events


# -- the workloads -----------------------------------------------------------------------------


def _engine_event(i: int) -> bytes:
    return (
        b'data: {"index":0,"content":'
        + json.dumps(f" tok{i % 97}").encode()
        + b',"tokens":['
        + str(i).encode()
        + b'],"stop":false,"id_slot":0,"tokens_predicted":'
        + str(i + 1).encode()
        + b"}\n\n"
    )


def _orch_event(i: int) -> bytes:
    return f'id: {i + 2}\nevent: token\ndata: {{"t":" tok{i % 97}","i":{i}}}\n\n'.encode()


def _reads(events: list[bytes], per_read: int) -> list[bytes]:
    return [b"".join(events[i : i + per_read]) for i in range(0, len(events), per_read)]


def _new(reads: list[bytes]) -> int:
    parser, n = SSEParser(), 0
    for chunk in reads:
        for event in parser.feed(chunk):
            json.loads(event.data)
            n += 1
    return n


def _old_engine(reads: list[bytes]) -> int:
    decoder, n = _EngineDecoder(), 0
    for chunk in reads:
        for data in decoder.feed(chunk):
            json.loads(data)
            n += 1
    return n


def _old_client(reads: list[bytes]) -> int:
    parser, n = _ClientParser(), 0
    for chunk in reads:
        for _event, data, _id in parser.feed(chunk):
            json.loads(data)
            n += 1
    return n


def _rate(parse: Parse, reads: list[bytes], events: int, seconds: float) -> float:
    """Events per second, over repeated whole-stream parses for about ``seconds``."""
    assert parse(reads) == events, "the parser lost events"
    gc.collect()
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline and done < 10_000:
        parse(reads)
        done += 1
    return done * events / (time.perf_counter() - start)


def run(quick: bool = False) -> dict[str, Any]:
    rounds, seconds, n = (3, 0.3, 2000) if quick else (5, 1.0, 5000)
    engine_events = [_engine_event(i) for i in range(n)]
    orch_events = [_orch_event(i) for i in range(n)]
    workloads = [
        ("engine, 1 event/read", _reads(engine_events, 1), _old_engine, "engines' SseDecoder"),
        ("engine, 16 events/read", _reads(engine_events, 16), _old_engine, "engines' SseDecoder"),
        ("orchestratord, 8 events/read", _reads(orch_events, 8), _old_client, "SDK's SSEParser"),
    ]
    results: dict[str, Any] = {"events": n, "rounds": rounds, "seconds_per_round": seconds, "workloads": []}
    for name, reads, old, baseline in workloads:
        new_rates, old_rates = [], []
        for _ in range(rounds):  # alternate, so that drift in the machine's load hits both alike
            new_rates.append(_rate(_new, reads, n, seconds))
            old_rates.append(_rate(old, reads, n, seconds))
        new_rate, old_rate = statistics.median(new_rates), statistics.median(old_rates)
        results["workloads"].append(
            {
                "workload": name,
                "baseline": baseline,
                "shared_events_per_s": new_rate,
                "baseline_events_per_s": old_rate,
                "ratio": new_rate / old_rate,
                "shared_spread": [min(new_rates), max(new_rates)],
                "baseline_spread": [min(old_rates), max(old_rates)],
            }
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sse_parse", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"SSE parsing, {results['events']} events per stream, median of {results['rounds']} rounds")
    print(f"  {'workload':<30} {'shared ev/s':>12} {'baseline ev/s':>14}  {'ratio':>6}  baseline")
    for w in results["workloads"]:
        print(
            f"  {w['workload']:<30} {w['shared_events_per_s']:>12,.0f} {w['baseline_events_per_s']:>14,.0f}"
            f"  {w['ratio']:>6.2f}  {w['baseline']}"
        )


if __name__ == "__main__":
    main()
