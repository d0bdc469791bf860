"""Gate sandbox: a gate that reaches for the network, fork-bombs, loops forever or hogs memory is stopped
and reported, and the host is unharmed (it can still spawn processes; nothing the gate started is left).

Each test asks the machine what it offers first and skips, saying exactly why, where a mechanism is
missing; on this project's machines (root, util-linux, a writable pids cgroup) none is skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from llama_orch.agents._gates import GateSpec, run_gate
from llama_orch.agents._sandbox import SandboxSupport, probe_support

PY = sys.executable


def _support_or_skip(aspect: str) -> None:
    support = probe_support()
    if aspect == "network" and not support.net_ns:
        pytest.skip(f"no network isolation on this machine: {support.notes.get('net-ns')}")
    if aspect == "processes" and support.cgroup is None and (support.is_root or not support.user_ns):
        pytest.skip(f"no process limit on this machine: {support.notes.get('cgroup')}")
    if aspect == "cleanup" and not support.pid_ns:
        pytest.skip(f"no pid namespace on this machine: {support.notes.get('namespaces')}")


def _gate(script: Path, **fields: object) -> GateSpec:
    return GateSpec.model_validate({"name": "hostile", "argv": [PY, str(script)], **fields})


def _processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions `marker` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _host_unharmed(marker: str) -> None:
    assert _processes_mentioning(marker) == [], "the gate left processes behind"
    done = subprocess.run(["true"], check=False, timeout=30)  # the host can still spawn processes
    assert done.returncode == 0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on the host's loopback (never any outside address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def _connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


NETWORK_SCRIPT = """\
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
        s.sendall(b"exfiltrated")
except OSError as e:
    print("network refused:", e)
    sys.exit(2)
print("connected")
"""


async def test_network_is_refused_and_reported(tmp_path: Path, listener: socket.socket) -> None:
    _support_or_skip("network")
    port = listener.getsockname()[1]
    script = tmp_path / "net.py"
    script.write_text(NETWORK_SCRIPT.format(port=port))

    result = await run_gate(_gate(script, timeout_s=30), tmp_path)
    assert result.status == "fail" and result.returncode == 2
    assert "network refused" in result.stdout
    assert "private network namespace" in result.isolation.applied["network"]
    assert _connections(listener) == 0, "the gate reached the host's listener"

    # The same gate, allowed network by its config, does connect: the test above can fail.
    allowed = await run_gate(_gate(script, timeout_s=30, network=True), tmp_path)
    assert allowed.status == "pass" and allowed.stdout == "connected\n"
    assert allowed.isolation.applied["network"].startswith("allowed")
    assert _connections(listener) == 1


async def test_loopback_inside_the_sandbox_still_works(tmp_path: Path) -> None:
    _support_or_skip("network")
    script = tmp_path / "lo.py"
    script.write_text(
        "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n"
        "c.sendall(b'hi'); print(a.recv(2).decode())\n"
    )
    result = await run_gate(_gate(script, timeout_s=30), tmp_path)
    assert (result.status, result.stdout) == ("pass", "hi\n")


FORK_BOMB = """\
import os, sys, time
children = 0
for _ in range(10_000):  # a hard cap: bounded even without a sandbox
    try:
        pid = os.fork()
    except OSError as e:
        print(f"fork refused after {{children}} children: {{e}}", flush=True)
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    children += 1
else:
    print("forked 10000 children", flush=True)
{after}
"""


@pytest.mark.parametrize(
    ("after", "expect_limit"),
    [("sys.exit(3)", "processes"), ("time.sleep(600)", "timeout")],
    ids=["bomb-gives-up", "bomb-hangs"],
)
async def test_fork_bomb_is_stopped_and_leaves_nothing(tmp_path: Path, after: str, expect_limit: str) -> None:
    _support_or_skip("processes")
    script = tmp_path / "bomb.py"
    script.write_text(FORK_BOMB.format(after=after))
    result = await run_gate(_gate(script, timeout_s=8, max_procs=40, memory_mb=512), tmp_path)
    assert result.status == "error"
    assert result.limit_hit == expect_limit
    assert "fork refused after" in result.stdout, result.stdout + result.stderr
    refused_after = int(result.stdout.split("fork refused after ")[1].split()[0])
    assert refused_after < 40
    assert "processes" in result.isolation.applied
    assert ("process limit" if expect_limit == "processes" else "timed out") in result.reason
    _host_unharmed(str(script))


async def test_infinite_loop_is_killed_at_its_timeout(tmp_path: Path) -> None:
    script = tmp_path / "spin.py"
    script.write_text("while True:\n    pass\n")
    result = await run_gate(_gate(script, timeout_s=2), tmp_path)
    assert result.status == "error" and result.timed_out and result.limit_hit == "timeout"
    assert result.returncode is not None and result.returncode < 0
    assert "timed out after 2 s" in result.reason
    _host_unharmed(str(script))


async def test_memory_hog_is_stopped_by_the_memory_limit(tmp_path: Path) -> None:
    script = tmp_path / "hog.py"
    script.write_text(
        textwrap.dedent(
            """\
            hoard = []
            for _ in range(64):  # at most 4 GiB, in 64 MiB steps
                hoard.append(bytearray(64 * 1024 * 1024))
            print("allocated", len(hoard) * 64, "MiB")
            """
        )
    )
    result = await run_gate(_gate(script, timeout_s=60, memory_mb=256), tmp_path)
    assert result.status == "error" and result.limit_hit == "memory"
    assert "MemoryError" in result.stderr and "allocated" not in result.stdout
    assert "memory limit (RLIMIT_AS=256 MiB)" in result.reason
    # Control: with room enough, the same script runs to its end.
    small = tmp_path / "small.py"
    small.write_text(script.read_text().replace("range(64)", "range(1)"))
    assert (await run_gate(_gate(small, timeout_s=60, memory_mb=512), tmp_path)).status == "pass"


async def test_a_daemon_started_by_a_gate_dies_with_it(tmp_path: Path) -> None:
    _support_or_skip("cleanup")
    script = tmp_path / "daemon.py"
    script.write_text(
        textwrap.dedent(
            """\
            import os, time
            if os.fork() == 0:
                os.setsid()  # leaves the process group: only the pid namespace or cgroup can catch it
                if os.fork() == 0:
                    time.sleep(600)
                os._exit(0)
            time.sleep(0.2)
            print("parent done")
            """
        )
    )
    result = await run_gate(_gate(script, timeout_s=30), tmp_path)
    assert result.status == "pass" and result.stdout == "parent done\n"
    assert "pid namespace" in result.isolation.applied["cleanup"]
    _host_unharmed(str(script))


async def test_a_machine_without_mechanisms_gets_an_honest_report(tmp_path: Path, listener: socket.socket) -> None:
    """Nothing is claimed that was not applied: here the gate does reach the host, and the report says so."""
    bare = SandboxSupport(
        unshare_flags=None,
        user_ns=False,
        net_ns=False,
        pid_ns=False,
        cgroup=None,
        is_root=True,
        notes={"net-ns": "`unshare` (util-linux) is not installed", "cgroup": "no pids controller mounted"},
    )
    script = tmp_path / "net.py"
    script.write_text(NETWORK_SCRIPT.format(port=listener.getsockname()[1]))
    gate = GateSpec(name="bare", argv=(PY, str(script)), timeout_s=30)
    result = await run_gate(gate, tmp_path, support=bare)
    assert result.status == "pass" and _connections(listener) == 1
    assert "network" not in result.isolation.applied
    assert result.isolation.missing["network"] == "`unshare` (util-linux) is not installed"
    assert result.isolation.missing["processes"].startswith("root is exempt from RLIMIT_NPROC")
    assert result.isolation.applied["cleanup"] == "process group"
    assert result.isolation.applied["memory"] == "RLIMIT_AS=2048 MiB"
