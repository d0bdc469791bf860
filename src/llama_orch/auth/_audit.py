"""Audit records for admin actions (catalog changes, drain, reload, registration, withdrawal).

One JSON object per line in ``<data_dir>/audit.jsonl`` (appended, flushed per record) and one log
line on ``llama_orch.audit``. A record names the identity (``method:subject``, never the
credential), the action, its target, the outcome and the correlation id; ``details`` pass through
the redactor first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llama_orch.policy import Redactor, default_redactor

log = logging.getLogger("llama_orch.audit")


@dataclass(frozen=True)
class AuditRecord:
    identity: str
    action: str
    target: str
    outcome: str
    correlation_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class AuditLog:
    """Appends audit records to ``path`` (None: log lines only)."""

    def __init__(self, path: Path | None, *, redactor: Redactor | None = None) -> None:
        self.path = path
        self._redactor = redactor
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, record: AuditRecord) -> AuditRecord:
        r = self._redactor or default_redactor()
        clean = AuditRecord(
            record.identity, record.action, r.clean(record.target), record.outcome, record.correlation_id,
            r.redact_value(record.details), record.at,
        )  # fmt: skip
        log.info(
            "audit %s %s on %s: %s",
            clean.identity,
            clean.action,
            clean.target,
            clean.outcome,
            extra={
                "identity": clean.identity,
                "audit_action": clean.action,
                "correlation_id": clean.correlation_id,
                "narration": f"{clean.identity} {clean.action} {clean.target} ({clean.outcome})",
            },
        )
        if self.path is not None:
            line = json.dumps(asdict(clean), sort_keys=True, default=str) + "\n"
            with self._lock, self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        return clean

    def read(self) -> list[AuditRecord]:
        """Every record written so far (for tests and ``llama-orch`` tooling)."""
        if self.path is None or not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(AuditRecord(**json.loads(line)))
        return out
