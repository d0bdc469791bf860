"""``pool-managerd``: the per-host agent of a multi-host deployment.

It serves engine replicas on this host and registers them with orchestratord over the control
API (``POST /v1/replicas/register``), then heartbeats each (``POST /v1/replicas/{id}/heartbeat``)
with its engine's health and the host's GPU readings. When orchestratord answers a heartbeat with
``404`` (it restarted) the host registers again; when orchestratord is unreachable it keeps
trying, with capped backoff. On SIGTERM/SIGINT it withdraws its replicas (``DELETE``) and stops.

Engines (``--engine``):

- ``mock``: the built-in mock engine served over HTTP in the llama.cpp wire format (tests, demos);
- ``external``: engines already running on this host (``--endpoint URL``, repeatable), e.g. a
  ``llama-server`` started by hand or by a supervisor.

Example::

    pool-managerd --orchestrator http://orch:8080 --name gpu-host-a --pool gpu \\
        --engine external --endpoint http://10.1.2.3:8081 --model-ref hf:org/repo/model.gguf

With authentication on, it sends ``Authorization: Bearer`` from ``--token`` or ``LLORCH_TOKEN``
(an identity with the ``replicas`` scope); a refused registration (401/403) exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from llama_orch.engines.mock import MockSettings
from llama_orch.engines.mock_server import make_app as make_mock_app
from llama_orch.pools._inventory import GpuDevice, Inventory, detect, parse_device_mask
from llama_orch_api import (
    GpuReading,
    HeartbeatAck,
    RegistrationAck,
    RemoteReplica,
    ReplicaHeartbeat,
    ReplicaRegistration,
)

log = logging.getLogger("llama_orch.pools.managerd")

BACKOFF_MAX_S = 5.0


class Rejected(Exception):
    """orchestratord refused the registration (a 4xx): retrying the same cannot help."""


@dataclass
class HostReplica:
    name: str
    endpoint: str
    slots: int
    devices: frozenset[int] | None = None
    replica_id: str | None = None


@dataclass
class ManagerdConfig:
    orchestrator: str
    name: str
    pool: str
    model_ref: str
    engine: str = "mock"
    replicas: int = 1
    endpoints: list[str] = field(default_factory=list)
    slots: int = 4
    bind: str = "127.0.0.1"
    advertise: str | None = None
    devices: str | None = None
    mock: MockSettings = field(default_factory=MockSettings)
    request_timeout_s: float = 5.0
    token: str | None = None
    """Bearer token for orchestratord (needs the ``replicas`` scope); never logged."""


class Managerd:
    """One host's engines and their registration. ``run()`` until ``stop()``."""

    def __init__(self, config: ManagerdConfig, inventory: Inventory | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self.replicas: list[HostReplica] = []
        self._runners: list[web.AppRunner] = []
        self._stop = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self.interval_s = 1.0

    # -- engines ----------------------------------------------------------------------------------

    async def start_engines(self) -> None:
        config = self.config
        if self.inventory is None:
            self.inventory = await asyncio.to_thread(detect)
        devices = parse_device_mask(config.devices, self.inventory.devices())
        if config.engine == "mock":
            advertise = config.advertise or config.bind
            for i in range(config.replicas):
                runner = web.AppRunner(make_mock_app(config.mock), handle_signals=False, access_log=None)
                await runner.setup()
                self._runners.append(runner)
                sock = socket.socket(socket.AF_INET6 if ":" in config.bind else socket.AF_INET)
                sock.bind((config.bind, 0))
                port = int(sock.getsockname()[1])
                await web.SockSite(runner, sock).start()
                self.replicas.append(HostReplica(f"r{i}", f"http://{advertise}:{port}", config.mock.slots, devices))
        elif config.engine == "external":
            for i, endpoint in enumerate(config.endpoints):
                slots = await self._engine_slots(endpoint)
                self.replicas.append(HostReplica(f"r{i}", endpoint.rstrip("/"), slots, devices))
        else:
            raise ValueError(f"unknown engine {config.engine!r} (mock or external)")
        log.info(
            "host %s serves %d replica(s) of pool %s: %s",
            config.name,
            len(self.replicas),
            config.pool,
            ", ".join(r.endpoint for r in self.replicas),
        )

    async def _engine_slots(self, endpoint: str) -> int:
        """llama-server's ``total_slots`` from ``/props``, else the configured slots."""
        try:
            async with self.http.get(f"{endpoint.rstrip('/')}/props") as resp:
                if resp.status == 200:
                    slots = (await resp.json()).get("total_slots")
                    if isinstance(slots, int) and slots >= 1:
                        return slots
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("cannot read /props of %s (%s): assuming %d slots", endpoint, exc, self.config.slots)
        return self.config.slots

    async def _healthy(self, replica: HostReplica) -> bool:
        try:
            async with self.http.get(f"{replica.endpoint}/health") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _gpus(self, replica: HostReplica) -> list[GpuReading]:
        readings: list[GpuDevice] = self.inventory.devices() if self.inventory is not None else []
        return [
            GpuReading(
                index=g.index,
                uuid=g.uuid,
                name=g.name,
                vram_total_bytes=g.vram_total_bytes,
                vram_free_bytes=g.vram_free_bytes,
                utilization_pct=g.utilization_pct,
            )
            for g in readings
            if replica.devices is not None and g.index in replica.devices
        ]

    # -- orchestratord ----------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else None
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s), headers=headers
            )
        return self._http

    async def register(self) -> RegistrationAck:
        config = self.config
        body = ReplicaRegistration(
            host=config.name,
            replicas=[
                RemoteReplica(
                    name=r.name,
                    pool=config.pool,
                    endpoint=r.endpoint,
                    model_ref=config.model_ref,
                    slots=r.slots,
                    devices=sorted(r.devices) if r.devices is not None else None,
                    gpus=self._gpus(r),
                )
                for r in self.replicas
            ],
        )
        async with self.http.post(
            f"{config.orchestrator}/v1/replicas/register",
            data=body.model_dump_json(),
            headers={"Content-Type": "application/json"},
        ) as resp:
            text = await resp.text()
            if 400 <= resp.status < 500:
                raise Rejected(f"orchestratord refused the registration ({resp.status}): {text}")
            resp.raise_for_status()
        ack = RegistrationAck.model_validate_json(text)
        for replica, registered in zip(self.replicas, ack.replicas, strict=True):
            replica.replica_id = registered.id
        self.interval_s = ack.heartbeat_interval_s
        log.info(
            "registered %d replica(s) with %s (heartbeat every %g s)",
            len(ack.replicas),
            config.orchestrator,
            ack.heartbeat_interval_s,
            extra={"narration": "host joined"},
        )
        return ack

    async def heartbeat(self, replica: HostReplica) -> HeartbeatAck | None:
        """One heartbeat; None when orchestratord no longer knows the replica (404)."""
        beat = ReplicaHeartbeat(ready=await self._healthy(replica), gpus=self._gpus(replica))
        async with self.http.post(
            f"{self.config.orchestrator}/v1/replicas/{replica.replica_id}/heartbeat",
            data=beat.model_dump_json(),
            headers={"Content-Type": "application/json"},
        ) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return HeartbeatAck.model_validate_json(await resp.read())

    async def withdraw(self) -> None:
        for replica in self.replicas:
            if replica.replica_id is None:
                continue
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.delete(f"{self.config.orchestrator}/v1/replicas/{replica.replica_id}"):
                    pass

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True when stopped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    async def run(self) -> None:
        """Register, then heartbeat until stopped; re-register when forgotten."""
        await self.start_engines()
        backoff = 0.25
        registered = False
        try:
            while not self._stop.is_set():
                try:
                    if not registered:
                        await self.register()
                        registered, backoff = True, 0.25
                    for replica in self.replicas:
                        if await self.heartbeat(replica) is None:
                            log.info("orchestratord forgot replica %s: registering again", replica.replica_id)
                            registered = False
                            break
                except (aiohttp.ClientError, TimeoutError, ValidationError) as exc:
                    log.warning("orchestratord at %s unreachable (%s); retrying", self.config.orchestrator, exc)
                    registered = False
                    if await self._sleep(backoff):
                        break
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
                    continue
                if registered and await self._sleep(self.interval_s):
                    break
        finally:
            if registered:
                await self.withdraw()
            await self.aclose()

    def stop(self) -> None:
        self._stop.set()

    async def aclose(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.inventory is not None:
            self.inventory.close()


def parse_args(argv: list[str] | None = None) -> ManagerdConfig:
    parser = argparse.ArgumentParser(prog="pool-managerd", description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--orchestrator", default=os.environ.get("LLORCH_URL", "http://127.0.0.1:8080"))
    parser.add_argument(
        "--token",
        default=os.environ.get("LLORCH_TOKEN"),
        help="bearer token with the 'replicas' scope (default: $LLORCH_TOKEN)",
    )
    parser.add_argument("--name", default=socket.gethostname().split(".")[0], help="this host's name (unique)")
    parser.add_argument("--pool", default="default", help="the orchestratord pool the replicas serve")
    parser.add_argument("--model-ref", default="mock:tiny", help="the model the replicas serve (the pool's)")
    parser.add_argument("--engine", choices=["mock", "external"], default="mock")
    parser.add_argument("--endpoint", action="append", default=[], help="engine URL (external; repeatable)")
    parser.add_argument("--replicas", type=int, default=1, help="mock replicas to serve")
    parser.add_argument("--slots", type=int, default=4, help="slots per replica (mock; external fallback)")
    parser.add_argument("--bind", default="127.0.0.1", help="address the mock engines listen on")
    parser.add_argument("--advertise", default=None, help="address orchestratord reaches them at")
    parser.add_argument("--devices", default=None, help="CUDA device mask of the replicas (e.g. 0,1)")
    parser.add_argument("--mock-tokens-per-s", type=float, default=200.0)
    parser.add_argument("--mock-first-token-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.engine == "external" and not args.endpoint:
        parser.error("--engine external needs at least one --endpoint")
    if args.replicas < 1 or args.slots < 1:
        parser.error("--replicas and --slots must be at least 1")
    return ManagerdConfig(
        orchestrator=args.orchestrator.rstrip("/"),
        name=args.name,
        pool=args.pool,
        model_ref=args.model_ref,
        engine=args.engine,
        replicas=args.replicas,
        endpoints=args.endpoint,
        slots=args.slots,
        bind=args.bind,
        advertise=args.advertise,
        devices=args.devices,
        token=args.token or None,
        mock=MockSettings(
            tokens_per_s=args.mock_tokens_per_s, first_token_ms=args.mock_first_token_ms, slots=args.slots
        ),
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def _main() -> int:
        managerd = Managerd(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, managerd.stop)
        try:
            await managerd.run()
        except Rejected as exc:
            log.error("%s", exc)
            return 2
        return 0

    sys.exit(asyncio.run(_main()))


__all__ = ["Managerd", "ManagerdConfig", "main", "parse_args"]


if __name__ == "__main__":
    main()
