"""Contract tests: Pact (consumer llama-orch-cli, provider orchestratord) and schemathesis."""

from __future__ import annotations

import os

# The Pact FFI reports anonymous usage over the network unless told not to; CI has no network.
os.environ.setdefault("PACT_DO_NOT_TRACK", "true")
