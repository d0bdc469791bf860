"""Structured logs: JSON fields, narration, trace ids, pretty lines, and redaction before formatting."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from llama_orch.policy import BuiltinPolicy, Redactor
from llama_orch.telemetry import (
    JsonFormatter,
    PrettyFormatter,
    RedactingFilter,
    Tracing,
    configure_logging,
    stop_redacting_records,
)

CANARY = "canary-0a1b2c3d4e5f"


@pytest.fixture(autouse=True)
def _root_level() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    stop_redacting_records()


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    policy = BuiltinPolicy(redactor=Redactor(literals=[CANARY]))
    handler = configure_logging("DEBUG", fmt="json", stream=stream, policy=policy.write)
    logger = logging.getLogger("llama_orch.test")
    try:
        yield stream, logger
    finally:
        logging.getLogger().removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_ids_and_narration(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    logger.info("queued %s", "t1", extra={"task_id": "t1", "pool": "default", "narration": "queued behind 3 others"})
    (line,) = _lines(stream)
    assert line["msg"] == "queued t1" and line["task_id"] == "t1" and line["pool"] == "default"
    assert line["narration"] == "queued behind 3 others" and line["level"] == "info"
    assert line["logger"] == "llama_orch.test" and "trace_id" not in line


def test_trace_ids_appear_inside_a_span(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    tracing, _ = Tracing.in_memory()
    with tracing.span("admission") as span:
        logger.info("admitted")
    (line,) = _lines(stream)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_secrets_are_redacted_in_message_args_extras_and_tracebacks(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    logger.warning(
        "upstream key %s", CANARY, extra={"url": f"https://h/?k={CANARY}", "headers": {"Authorization": "x"}}
    )
    try:
        raise ValueError(f"bad secret {CANARY} Bearer abcdefgh12345678")
    except ValueError:
        logger.exception("failed with %s", CANARY)
    text = stream.getvalue()
    assert CANARY not in text and "abcdefgh12345678" not in text
    lines = _lines(stream)
    assert lines[0]["headers"] == {"Authorization": "[REDACTED]"}
    assert "ValueError: bad secret [REDACTED]" in str(lines[1]["exc"])


def test_pretty_lines_for_people() -> None:
    record = logging.LogRecord("llama_orch.server", logging.INFO, __file__, 1, "queued", None, None)
    record.narration = "queued behind 3 others"
    record.pool = "default"
    text = PrettyFormatter().format(record)
    assert "INFO  server  queued behind 3 others" in text and "pool=default" in text and "msg=queued" in text
    assert configure_logging(fmt="pretty", stream=io.StringIO()).formatter.__class__ is PrettyFormatter
    assert configure_logging(fmt="auto", stream=io.StringIO()).formatter.__class__ is JsonFormatter  # not a TTY
    assert len([h for h in logging.getLogger().handlers if isinstance(h.formatter, PrettyFormatter)]) == 0


def test_filter_without_a_policy_uses_the_default_redactor() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("supersecretvalue",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "token=[REDACTED]"
    assert json.loads(JsonFormatter().format(record))["msg"] == "token=[REDACTED]"


def test_records_are_redacted_when_made_for_every_handler(captured: tuple[io.StringIO, logging.Logger]) -> None:
    _, logger = captured
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    other = Keep()
    logger.addHandler(other)  # a handler without our filter
    try:
        logger.warning("key %s", CANARY)
    finally:
        logger.removeHandler(other)
    assert seen[0].getMessage() == "key [REDACTED]"
