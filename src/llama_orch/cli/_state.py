"""What every command shares: the global options, the SDK client, the two consoles, output."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, TextIO

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.status import Status

from llama_orch.cli._errors import CliError
from llama_orch.client import Client

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Machine output: the API model's JSON on stdout (errors as JSON on stderr).")
]


@dataclass
class State:
    """The global options, and what is built from them on first use."""

    base_url: str
    token: str | None
    json: bool
    timeout: float
    correlation_id: str | None
    _client: Client | None = field(default=None, repr=False)
    _out: Console | None = field(default=None, repr=False)
    _err: Console | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def client(self) -> Client:
        """The SDK client (one per invocation; closed when the command ends)."""
        with self._lock:  # progress displays use it from two threads
            return self._make_client()

    def _make_client(self) -> Client:
        if self._client is None:
            try:
                self._client = Client(
                    self.base_url,
                    token=self.token,
                    timeout=self.timeout,
                    correlation_id=self.correlation_id,
                )
            except ValueError as exc:
                raise CliError(f"--base-url / LLORCH_BASE_URL: {exc}", hint="e.g. http://127.0.0.1:8080") from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = _console(sys.stdout)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = _console(sys.stderr)
        return self._err

    def use_json(self, flag: bool) -> bool:
        """A command's own ``--json`` adds to the global one."""
        self.json = self.json or flag
        return self.json

    def emit(self, model: BaseModel) -> None:
        """One model as one line of JSON on stdout."""
        sys.stdout.write(model.model_dump_json() + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """A progress line for humans, on stderr (silent with ``--json``)."""
        if not self.json:
            self.err.print(text, markup=False)

    @contextmanager
    def spinner(self, text: str) -> Iterator[Status | None]:
        """A live spinner on stderr when it is a terminal (and not ``--json``); else nothing."""
        if self.json or not self.err.is_terminal:
            yield None
            return
        with self.err.status(text) as status:
            yield status


def _console(file: TextIO) -> Console:
    # Piped or captured output is read in logs and files, not an 80-column terminal: keep tables whole.
    width = None if file.isatty() or os.environ.get("COLUMNS") else 160
    return Console(file=file, highlight=False, width=width)


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_object(State)
    if state is None:  # a command invoked without the app's callback (tests calling it directly)
        raise RuntimeError("llama-orch commands need the app's global options")
    return state
