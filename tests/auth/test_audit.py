"""Audit records: appended as JSON lines, identity not secret, details redacted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from llama_orch.auth import AuditLog, AuditRecord
from llama_orch.policy import Redactor


def test_records_are_appended_and_redacted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(tmp_path / "sub" / "audit.jsonl", redactor=Redactor(literals=["canary-99887766"]))
    with caplog.at_level(logging.INFO, logger="llama_orch.audit"):
        audit.record(AuditRecord("token:ops", "pool.drain", "pool default", "ok", "cid-1"))
        audit.record(
            AuditRecord(
                "mtls:gpu1", "replica.register", "http://u:pw123456@10.0.0.2:8000", "ok",
                details={"api_key": "abc", "note": "has canary-99887766"},
            )
        )  # fmt: skip
    lines = (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["action"] == "pool.drain"
    records = audit.read()
    assert records[1].details == {"api_key": "[REDACTED]", "note": "has [REDACTED]"}
    assert "pw123456" not in lines[1] and "canary" not in lines[1]
    assert [r.audit_action for r in caplog.records] == ["pool.drain", "replica.register"]  # type: ignore[attr-defined]
    assert AuditLog(None).read() == []
