"""The ``llama-orch`` command (work in progress)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("llama-orch: not implemented yet")
