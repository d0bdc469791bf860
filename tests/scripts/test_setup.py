"""``scripts/setup`` (run by every README script) from a shell where the project's ``.venv`` is
activated: that ``python3`` has neither uv nor pip, so setup must look past it (it used to fail with
``No module named pip``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setup_works_with_the_project_venv_activated() -> None:
    venv = ROOT / ".venv"
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}
    # What `source .venv/bin/activate` does.
    done = subprocess.run([str(ROOT / "scripts" / "setup")], capture_output=True, text=True, env=env, timeout=600,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "No module named" not in done.stderr
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import llama_orch"], capture_output=True, timeout=60,
                           check=False)  # fmt: skip
    assert probe.returncode == 0
