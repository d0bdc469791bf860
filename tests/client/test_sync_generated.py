"""``client/_sync.py`` is generated from ``client/_async.py`` by ``scripts/unasync``; this fails while it is stale."""

from __future__ import annotations

import subprocess
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "unasync"


@pytest.fixture(scope="module")
def unasync() -> ModuleType:
    loader = SourceFileLoader("unasync_script", str(SCRIPT))
    spec = spec_from_loader(loader.name, loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_sync_client_is_what_the_async_one_generates(unasync: ModuleType) -> None:
    assert not unasync.stale(), "src/llama_orch/client/_sync.py is stale: run scripts/unasync"


def test_check_fails_on_a_stale_file_and_passes_once_regenerated(tmp_path: Path) -> None:
    source, target = tmp_path / "_async.py", tmp_path / "_sync.py"
    original = (ROOT / "src/llama_orch/client/_async.py").read_text()
    source.write_text(original)
    check = [sys.executable, str(SCRIPT), "--check", "--source", str(source), "--target", str(target)]
    assert subprocess.run([*check[:2], *check[3:]], check=False).returncode == 0  # generate
    assert subprocess.run(check, check=False).returncode == 0
    # A hand edit of the async client that was not regenerated:
    source.write_text(original.replace("attempt += 1", "attempt += 2", 1))
    stale = subprocess.run(check, capture_output=True, text=True, check=False)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "scripts/unasync" in stale.stderr
    # And a hand edit of the generated file:
    source.write_text(original)
    target.write_text(target.read_text().replace("time.sleep(delay)", "time.sleep(0)", 1))
    assert subprocess.run(check, check=False).returncode == 1


FUTURE = "from __future__ import annotations\n\n"


@pytest.mark.parametrize(
    ("async_line", "sync_line"),
    [
        ("    async def f(self) -> None:", "    def f(self) -> None:"),
        ("        await asyncio.sleep(delay)", "        time.sleep(delay)"),
        ("        async with self._lock:", "        with self._lock:"),
        ("        async for chunk in response.aiter_bytes():", "        for chunk in response.iter_bytes():"),
        ("        return (await self.result()).text", "        return self.result().text"),
        ("        return call.parse(await self._send(call))", "        return call.parse(self._send(call))"),
        ("    ) -> AsyncGenerator[TaskEvent, None]:", "    ) -> Generator[TaskEvent, None, None]:"),
        ("from collections.abc import AsyncGenerator, Callable", "from collections.abc import Callable, Generator"),
        ("from x import AdaptiveLimiter, AsyncGate, Permit", "from x import AdaptiveLimiter, Permit, SyncGate"),
        ("import asyncio", "import threading\nimport time"),
        ('    """(``async with`` does it)"""', '    """(``with`` does it)"""'),
    ],
)
def test_rules(unasync: ModuleType, async_line: str, sync_line: str) -> None:
    assert unasync.generate('"""doc"""\n\n' + FUTURE + async_line) == unasync.HEADER + "\n" + FUTURE + sync_line


@pytest.mark.parametrize(
    "line",
    ["    await asyncio.gather(a, b)", "class AsyncThing:", "    async_mode = True  # says asyncio"],
)
def test_what_no_rule_covers_is_refused(unasync: ModuleType, line: str) -> None:
    with pytest.raises(ValueError, match="no rule turns"):
        unasync.generate('"""doc"""\n\n' + FUTURE + line)
