"""The scheduler: HTTP-free, it runs admitted tasks on engines.

::

    Orchestrator ── the task table, admission across pools (core.admit), sessions, budgets,
    │               retention, task records, registered remote replicas (Registry)
    └── Pool ────── one per configured pool: its bounded queue (core), and
        ├── ReplicaSet   start, swap (reload), retire and remove replicas; readiness via the Engine seam
        ├── Dispatcher   next task, replica choice (core.place), strict-task exclusivity
        └── relay()      an engine stream into the task's events, first-token/inter-token timeouts

Durability: every admitted task, its events, sessions and budgets go through the :class:`Journal`
(group commits) to one :class:`TaskStore` (SQLite by default); after a crash, the recovery puts
the task table back (see ``_recovery``). ``drain``/``reload`` (pool lifecycle) and the read-only
views (capabilities, health, replica sets) sit beside them. Every decision is a pure function of
``core``; engines come from ``pools``. Nothing here imports the server: it turns these objects
into HTTP.
"""

from __future__ import annotations

from llama_orch.scheduler._config import JournalConfig, RegistryConfig, SchedulerSettings, SessionConfig
from llama_orch.scheduler._dispatch import Dispatcher
from llama_orch.scheduler._journal import Journal
from llama_orch.scheduler._lifecycle import drain, reload
from llama_orch.scheduler._orchestrator import AdmissionGate, Admitted, Orchestrator
from llama_orch.scheduler._pool import Pool
from llama_orch.scheduler._records import RecordWriter, record_content, redacted_request
from llama_orch.scheduler._recovery import RecoveryReport
from llama_orch.scheduler._registry import Registry
from llama_orch.scheduler._relay import RelayTimeouts, relay
from llama_orch.scheduler._replicas import Replica, ReplicaSet
from llama_orch.scheduler._sqlite import SqliteStore
from llama_orch.scheduler._store import Batch, Recovered, TaskStore
from llama_orch.scheduler._tasks import Reader, TaskRecord, TaskState, redact_tokens
from llama_orch.scheduler._views import budget_info

__all__ = [
    "AdmissionGate",
    "Admitted",
    "Batch",
    "Dispatcher",
    "Journal",
    "JournalConfig",
    "Orchestrator",
    "Pool",
    "Reader",
    "RecordWriter",
    "Recovered",
    "RecoveryReport",
    "Registry",
    "RegistryConfig",
    "RelayTimeouts",
    "Replica",
    "ReplicaSet",
    "SchedulerSettings",
    "SessionConfig",
    "SqliteStore",
    "TaskRecord",
    "TaskState",
    "TaskStore",
    "budget_info",
    "drain",
    "record_content",
    "redact_tokens",
    "redacted_request",
    "relay",
    "reload",
]
