"""Contract tests: Pact (consumer llama-orch-cli, provider orchestratord) and schemathesis."""

from __future__ import annotations

import os

import pytest

from tests.contract._tally import TALLY

# The Pact FFI reports anonymous usage over the network unless told not to; CI has no network.
os.environ.setdefault("PACT_DO_NOT_TRACK", "true")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many schemathesis cases and stateful steps this run sent (counted as they were sent)."""
    if TALLY.ran:
        terminalreporter.write_sep("-", "schemathesis")
        terminalreporter.write_line(TALLY.summary())
