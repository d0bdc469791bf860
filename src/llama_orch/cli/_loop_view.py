"""How a loop run shows itself: a live rich view on a terminal, progress lines otherwise, and the end.

On a terminal (stderr is a TTY, no ``--json``) a live panel shows each agent (role, work item,
state, tokens), the items done/failed/waiting, the budget left and the gate pass rate, refreshed
four times a second. Elsewhere (a pipe, a log file) each merge, rejection and stop is one line on
stderr. With ``--json`` nothing is shown until the summary, on stdout.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from llama_orch.agents import LoopRun, TraceMatrix
from llama_orch.agents._plan import Plan
from llama_orch.cli._state import State

_STATE_STYLE = {"merged": "green", "done": "green", "failed": "red", "blocked": "yellow", "running": "cyan"}


def plan_table(plan: Plan) -> Table:
    table = Table(title=f"plan from {plan.base[:12]}", title_justify="left")
    for column in ("wave", "item", "role", "depends on", "acceptance"):
        table.add_column(column, overflow="fold")
    for item in plan.items:
        table.add_row(str(item.wave), item.id, item.role.value, ", ".join(item.depends_on) or "-", item.gate)
    return table


def matrix_table(matrix: TraceMatrix) -> Table:
    title = f"traceability at {matrix.commit[:12]}: {matrix.complete}/{len(matrix.rows)} requirements complete"
    table = Table(title=title, title_justify="left")
    for column in ("requirement", "contract", "tests", "commit", "gates"):
        table.add_column(column, overflow="fold")
    for row in matrix.rows:
        commit = row.commits[0] if row.commits else None
        table.add_row(
            Text(row.requirement, style="green" if row.complete else "yellow"),
            "\n".join(row.contracts) or "-",
            "\n".join(t.split("::", 1)[-1] for t in row.tests[:3]) + (f"\n(+{len(row.tests) - 3})" if len(row.tests) > 3
                                                                       else "") or "-",
            f"{commit.sha[:12]}" if commit else "-",
            ", ".join(commit.gates) if commit and commit.gates else "-",
        )  # fmt: skip
    return table


def agents_table(agents: list[dict[str, Any]]) -> Table:
    table = Table(title="agents", title_justify="left")
    for column in ("agent", "role", "work item", "state", "tokens"):
        table.add_column(column, justify="right" if column == "tokens" else "left")
    for a in agents:
        table.add_row(a["agent"].rsplit("-", 1)[-1], a["role"], a["item"], a["state"], str(a["tokens"]))
    return table


def run_lines(snap: dict[str, Any]) -> Text:
    items, budget, gates = snap["items"], snap["budget"], snap["gates"]
    left = []
    if budget.get("tokens_left") is not None:
        left.append(f"{budget['tokens_left']} tokens")
    if budget.get("time_left_s") is not None:
        left.append(f"{budget['time_left_s']:.0f} s")
    if budget.get("cost_left") is not None:
        left.append(f"{budget['cost_left']:g} cost")
    rate = "-" if gates.get("pass_rate") is None else f"{gates['pass_rate']:.0%}"
    return Text.assemble(
        (f"run {snap['run_id']}  ", "bold"),
        f"items {items['done']}/{items['total']} done, {items['running']} running, {items['failed']} failed, "
        f"{items['blocked']} blocked · tokens {budget['tokens_used']} · budget left: {', '.join(left) or 'unlimited'}"
        f" · gate pass rate {rate} · {budget['elapsed_s']:.0f} s",
    )


class LoopView:
    """Shows a run while it goes (see the module docstring)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.live: Live | None = None
        self.run: LoopRun | None = None
        self._shown = 0.0

    def attach(self, run: LoopRun) -> None:
        self.run = run
        if self.state.json:
            return
        if self.state.err.is_terminal:
            self.live = Live(console=self.state.err, refresh_per_second=4, transient=False)
            self.live.start()
            run.on_update = self._refresh
        else:
            run.listeners.append(self._line)

    def _refresh(self, run: LoopRun) -> None:
        if self.live is None or run.state is None:
            return
        now = time.monotonic()
        if now - self._shown < 0.2:
            return
        self._shown = now
        snap = run.snapshot("running", "")
        self.live.update(Group(run_lines(snap), agents_table(snap["agents"])))

    def _line(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        say = self.state.note
        if kind == "plan":
            counts = event.get("counts", {})
            say(f"plan: {event.get('items')} work items ({', '.join(f'{v} {k}' for k, v in counts.items())})")
        elif kind == "decision":
            outcome = event.get("outcome")
            mark = "merged" if outcome == "merged" else f"rejected ({outcome})"
            say(f"{mark} {event.get('item')}: {event.get('reason')}")
        elif kind == "malformed":
            say(f"malformed answers for {event.get('item')} ({event.get('attempts')} attempts): "
                f"{(event.get('errors') or ['?'])[-1][:200]}")  # fmt: skip
        elif kind == "item-failed":
            say(f"gave up {event.get('item')} after {event.get('rounds')} rounds: {event.get('reason')}")
        elif kind == "orphans-cancelled":
            say(f"cancelled {len(event.get('tasks', []))} task(s) the previous run left on the server")
        elif kind == "restored":
            say(f"restored the candidate of {event.get('item')} from commit {str(event.get('commit'))[:12]}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
