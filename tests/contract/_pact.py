"""What the consumer and the provider side of the Pact share: names, states, fixed data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import rfc8785

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = "llama-orch-cli"
PROVIDER = "orchestratord"
PACT_FILE = ROOT / "contracts" / "pacts" / f"{CONSUMER}-{PROVIDER}.json"

# Provider states the consumer tests name (tests/contract/_provider_states.py sets each one up).
QUEUE_FULL = "the queue of pool default is full"
POOL_BUSY = "pool default is busy for a long time"
TASK_FINISHED = "task t-1 has finished"
TASK_RUNNING = "task t-2 is running"
SESSION_EXISTS = "session s-1 exists"
POOL_DRAINING = "pool default is draining"
SMALL_BODIES = "the server accepts request bodies up to 1 KiB"
PLAN_STORED = "the plan artifact is stored"
MODEL_ON_DISK = "catalog model tiny-q4 is registered and its file is on disk"

PLAN_CONTENT = "# Plan\n1. write the contract\n2. verify it"
PLAN_TAGS = ["loop:1"]
# Content-addressed: anyone can recompute an artifact's id (README, "Ids anyone can recompute").
PLAN_ID = (
    "sha256:" + hashlib.sha256(rfc8785.dumps({"kind": "plan", "content": PLAN_CONTENT, "parent": None})).hexdigest()
)
