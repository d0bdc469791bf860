"""``llama-orch``: the command line for orchestratord, a thin layer over :mod:`llama_orch.client`.

Exit codes are listed in :mod:`llama_orch.cli._errors` (and the README).
"""

from __future__ import annotations

from llama_orch.cli._app import app
from llama_orch.cli._errors import ExitCode


def main() -> None:
    """The console script."""
    app(prog_name="llama-orch")


__all__ = ["ExitCode", "app", "main"]
