"""The one place where failures become messages and exit codes.

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     unexpected failure: a bug in llama-orch (``LLORCH_DEBUG=1`` shows the traceback)
2     usage or bad input: unknown option, bad value or file, the server's 400/405/413
3     not found: no such task, session, pool, catalog entry or artifact (404)
4     busy: backpressure (429) or the pool cannot take it now (503), retries exhausted
5     server or engine failure: 500, 502, a failed reload (422), an engine error in a stream,
      an answer that is not the API
6     cannot reach the server: connection refused, timeout, a stream that kept dropping
7     incompatible server API version
8     refused: budget, trust, retired model, a state conflict (409), a task cancelled by
      someone else, a model that failed verification
9     a loop run ended with work left: budget spent, stalled, items failed (its state is kept:
      ``loop run --resume RUN_ID``)
10    ``replay``: the re-issued call differs from the recorded one
130   interrupted (Ctrl-C); ``submit`` and the loop commands cancel their tasks on the server first
====  =====================================================================================
"""

from __future__ import annotations

import json
import os
import traceback
from enum import IntEnum

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from llama_orch.agents import (
    GateConfigError,
    LoopConfigError,
    ReplayError,
    RepositoryError,
    RunLockedError,
    SpecError,
)
from llama_orch.client import (
    APIError,
    BackpressureError,
    IncompatibleServerError,
    InvalidRequestError,
    LlamaOrchError,
    NotFoundError,
    ProtocolError,
    RefusedError,
    ServerError,
    ServerUnreachableError,
    StateConflictError,
    TransportError,
    UnavailableError,
)
from llama_orch_api import ErrorCode


class ExitCode(IntEnum):
    """Exit statuses of ``llama-orch``; the table is in this module's docstring."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    BUSY = 4
    SERVER = 5
    CONNECT = 6
    INCOMPATIBLE = 7
    REFUSED = 8
    INCOMPLETE = 9
    DIFFERENT = 10
    INTERRUPTED = 130


class CliError(Exception):
    """A failure the command layer detected itself (bad input file, failed verification…)."""

    def __init__(self, message: str, *, exit_code: ExitCode = ExitCode.USAGE, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint


HINTS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_PARAMS: "check the options; the message names the field that is wrong",
    ErrorCode.UNKNOWN_ENGINE: "`llama-orch capabilities` lists the engines served (--engine)",
    ErrorCode.UNKNOWN_MODEL: "`llama-orch capabilities` lists the models served (--model)",
    ErrorCode.UNKNOWN_POOL: "`llama-orch status` lists the pools (--pool)",
    ErrorCode.CTX_EXCEEDED: "shorten the prompt, or pick a pool with a larger ctx_max (`llama-orch capabilities`)",
    ErrorCode.MAX_TOKENS_EXCEEDED: "lower --max-tokens to the pool's max_tokens (`llama-orch capabilities`)",
    ErrorCode.DETERMINISM_UNSUPPORTED: "use --determinism best_effort, or a pool that offers strict",
    ErrorCode.WORKLOAD_UNSUPPORTED: "pick a pool that serves this workload (`llama-orch capabilities`)",
    ErrorCode.TASK_EXISTS: "choose another --task-id, or leave it out to get a fresh one",
    ErrorCode.NOT_FOUND: "check the id; finished tasks and idle sessions are only kept for a while",
    ErrorCode.METHOD_NOT_ALLOWED: "the server does not offer this operation: are client and server versions apart?",
    ErrorCode.PAYLOAD_TOO_LARGE: "send less; the limit is rate_limits.max_body_bytes in `llama-orch capabilities`",
    ErrorCode.ADMISSION_REJECT: "the pool's queue is full: retry later, or run fewer tasks at once",
    ErrorCode.QUEUE_FULL_DROP_LRU: "a newer task pushed this one out of a full queue: submit it again",
    ErrorCode.DEADLINE_UNMET: "the pool is too busy to start in time: relax --deadline-ms or retry later",
    ErrorCode.POOL_UNREADY: "no replica can take tasks now: see `llama-orch pools health POOL`",
    ErrorCode.POOL_UNAVAILABLE: "the pool is unavailable: see `llama-orch pools health POOL`",
    ErrorCode.WORKER_RESET: "the engine restarted during the task: submit it again",
    ErrorCode.DECODE_TIMEOUT: "the engine stalled: submit again, and see `llama-orch pools health POOL`",
    ErrorCode.ENGINE_ERROR: "the engine failed: `llama-orch pools health POOL` shows last_error; see the engine's logs",
    ErrorCode.CANCELLED: "the task was cancelled; submit it again if that was not meant",
    ErrorCode.INTERNAL: "a server bug: report it with the correlation id below",
    ErrorCode.CONFLICT: "the target is busy (draining, reloading or in use): wait, or change its state first",
    ErrorCode.UNTRUSTED_ARTIFACT: "verify the model (`llama-orch catalog verify ID`) or relax its trust policy",
    ErrorCode.MODEL_DEPRECATED: "the model is retired: reload the pool with another (`llama-orch pools reload`)",
    ErrorCode.BUDGET_EXCEEDED: "the session's budget is spent: lower --max-tokens or use another --session",
    ErrorCode.POOL_DRAINING: "the pool is draining: wait for `llama-orch pools reload`, or use another pool",
    ErrorCode.RELOAD_FAILED: "the pool rolled back to its old model: check the model reference and `pools health`",
    ErrorCode.ORCHESTRATOR_RESTARTED: "orchestratord restarted while the task ran: submit it again",
}


def _api_exit(error: APIError) -> ExitCode:
    if isinstance(error, InvalidRequestError):
        return ExitCode.USAGE
    if isinstance(error, NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(error, BackpressureError | UnavailableError):
        return ExitCode.BUSY
    if isinstance(error, RefusedError | StateConflictError):
        return ExitCode.REFUSED
    if isinstance(error, ServerError):
        return ExitCode.SERVER
    status = error.status or 500
    return ExitCode.USAGE if status < 500 else ExitCode.SERVER


def classify(exc: BaseException) -> tuple[ExitCode, str, str | None]:
    """Exit code, one-line message and hint for any failure."""
    if isinstance(exc, CliError):
        return exc.exit_code, exc.message, exc.hint
    if isinstance(exc, RepositoryError):
        return ExitCode.USAGE, str(exc), "the repository was left as it was"
    if isinstance(exc, LoopConfigError | GateConfigError):
        return ExitCode.USAGE, f"loop configuration: {exc}", "see `[tool.llama-orch]` in the README"
    if isinstance(exc, SpecError):
        return ExitCode.USAGE, str(exc), "requirements look like '- [LIB-0001] The library MUST ...'"
    if isinstance(exc, RunLockedError):
        return ExitCode.BUSY, str(exc), None
    if isinstance(exc, ReplayError):
        return ExitCode.NOT_FOUND, str(exc), "give the id of a loop prompt or response artifact"
    if isinstance(exc, APIError):
        try:
            hint = HINTS.get(ErrorCode(exc.code))
        except ValueError:
            hint = "this server is newer than this client: upgrading llama-orch may explain the code"
        return _api_exit(exc), str(exc), hint
    if isinstance(exc, ServerUnreachableError):
        return (
            ExitCode.CONNECT,
            str(exc),
            ("is orchestratord running? Start it with `llama-orch serve`, or point --base-url / LLORCH_BASE_URL at it"),
        )
    if isinstance(exc, TransportError):
        return ExitCode.CONNECT, str(exc), "the connection failed or was too slow: retry, or raise --timeout"
    if isinstance(exc, IncompatibleServerError):
        return ExitCode.INCOMPATIBLE, str(exc), None
    if isinstance(exc, ProtocolError):
        return ExitCode.SERVER, str(exc), "does --base-url point at orchestratord?"
    if isinstance(exc, LlamaOrchError):
        return ExitCode.FAILURE, str(exc), None
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in exc.errors()[:3]
        )
        return ExitCode.USAGE, f"invalid input: {problems}", "see `llama-orch COMMAND --help`"
    if isinstance(exc, OSError):
        return ExitCode.USAGE, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), None
    return (
        ExitCode.FAILURE,
        f"unexpected {type(exc).__name__}: {exc}",
        ("this is a bug in llama-orch; set LLORCH_DEBUG=1 to see where it happened"),
    )


def report(exc: BaseException, err: Console, *, as_json: bool) -> ExitCode:
    """Show ``exc`` on stderr (text, or one JSON object with ``--json``); return its exit code."""
    code, message, hint = classify(exc)
    correlation_id = getattr(exc, "correlation_id", None)
    if as_json:
        body: dict[str, object] = {"message": message, "exit_code": int(code), "hint": hint}
        if isinstance(exc, APIError):
            body.update(exc.envelope.model_dump(mode="json"))
            body.update(message=exc.message, status=exc.status, retry_after_ms=exc.retry_after_ms)
        body["correlation_id"] = correlation_id
        err.file.write(json.dumps({"error": body}, separators=(",", ":")) + "\n")
        err.file.flush()
    else:
        err.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
        if hint:
            err.print(Text.assemble(("  hint: ", "yellow"), hint), highlight=False)
        if correlation_id and isinstance(exc, APIError | TransportError) and correlation_id not in message:
            err.print(Text(f"  correlation id: {correlation_id}", style="dim"), highlight=False)
    if code is ExitCode.FAILURE and os.environ.get("LLORCH_DEBUG"):
        err.file.write("".join(traceback.format_exception(exc)))
    return code
