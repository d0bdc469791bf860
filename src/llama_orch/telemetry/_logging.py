"""Structured logs: JSON lines (pretty, one short line each, on a TTY) with ids in fields, a short
human ``narration``, the trace and span ids of the current span, and secrets redacted.

Use ``extra=`` for ids::

    log.info("queued task", extra={"task_id": tid, "pool": "default", "narration": "queued behind 3 others"})

:class:`RedactingFilter` passes every record's message, string fields and traceback through the
policy hook's ``write`` (sink ``log``) — the redactor by default — before any handler formats it.
:func:`configure_logging` also installs it as part of the log record factory, so that the message
and traceback of every record of the process are redacted when the record is made, whatever
handler (a syslog handler, a test's capture) later receives it; ``extra`` fields are set after the
factory runs, so the handler's filter covers those.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Callable
from typing import IO, Any

from llama_orch.policy import Write, WriteDecision, default_redactor
from llama_orch.telemetry._tracing import current_ids

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
WritePolicy = Callable[[Write], WriteDecision]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Redacts each record in place (message, string extras, traceback); never drops one."""

    def __init__(self, policy: WritePolicy | None = None) -> None:
        super().__init__()
        self._policy = policy

    def _clean(self, text: str) -> str:
        if self._policy is None:
            return default_redactor().clean(text)
        return self._policy(Write("log", text)).text

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_llorch_redacted", False):
            return True
        record.msg = self._clean(record.getMessage())
        record.args = None
        for key, value in _fields(record).items():
            if isinstance(value, str):
                setattr(record, key, self._clean(value))
            elif isinstance(value, dict | list | tuple):
                setattr(record, key, default_redactor().redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        record._llorch_redacted = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        ids = current_ids()
        if ids is not None:
            out.setdefault("trace_id", ids[0])
            out.setdefault("span_id", ids[1])
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


class PrettyFormatter(logging.Formatter):
    """``12:00:01 INFO  server  queued behind 3 others  task_id=… pool=default`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        narration = fields.pop("narration", None)
        when = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        name = record.name.removeprefix("llama_orch.")
        text = f"{when} {record.levelname:<5} {name}  {narration or record.getMessage()}"
        if narration:
            fields["msg"] = record.getMessage()
        if fields:
            text += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        return text


_INSTALLED: list[logging.Handler] = []
_BASE_FACTORY = logging.getLogRecordFactory()


def redact_records(policy: WritePolicy | None = None) -> None:
    """Make every new log record of the process with its message and traceback redacted."""
    redacting = RedactingFilter(policy)
    base = _BASE_FACTORY

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.msg = redacting._clean(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redacting._clean(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)


def stop_redacting_records() -> None:
    logging.setLogRecordFactory(_BASE_FACTORY)


def configure_logging(
    level: str | int = "INFO",
    *,
    fmt: str = "auto",
    stream: IO[str] | None = None,
    policy: WritePolicy | None = None,
) -> logging.Handler:
    """One handler on the root logger (replacing the one a previous call installed): JSON, or pretty
    when ``fmt`` is ``pretty`` or ``auto`` on a TTY; redacting every record."""
    stream = stream or sys.stderr
    pretty = fmt == "pretty" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrettyFormatter() if pretty else JsonFormatter())
    handler.addFilter(RedactingFilter(policy))
    root = logging.getLogger()
    for old in _INSTALLED:
        root.removeHandler(old)
    _INSTALLED[:] = [handler]
    root.addHandler(handler)
    redact_records(policy)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler
