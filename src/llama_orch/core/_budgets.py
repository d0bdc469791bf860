"""Session budgets: tokens, wall time and cost (OC-CLI-2402).

Tokens and cost are *reserved* at admission for a task's worst case (``max_tokens``) and settled
to what it really used when it ends, so concurrent submissions can never overspend: the check and
the reservation happen in one synchronous step. Wall time cannot be known in advance; it is
charged while tasks decode, and a task is stopped when the session's wall time runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BudgetExceeded(Exception):
    """The reservation would exceed the session's budget; ``dimension`` says which one."""

    def __init__(self, dimension: str, message: str) -> None:
        super().__init__(message)
        self.dimension = dimension
        self.message = message


@dataclass(slots=True)
class Budget:
    """Limits (None: unlimited) and what has been used and reserved against them."""

    tokens_limit: int | None = None
    wall_ms_limit: int | None = None
    cost_limit: float | None = None
    tokens_used: int = 0
    wall_ms_used: float = 0.0
    cost_used: float = 0.0
    # Running totals of the reservations, so every check is O(1) however many tasks are queued.
    tokens_reserved: int = 0
    cost_reserved: float = 0.0
    _reserved: dict[str, tuple[int, float]] = field(default_factory=dict)

    def tokens_remaining(self) -> int | None:
        if self.tokens_limit is None:
            return None
        return max(0, self.tokens_limit - self.tokens_used - self.tokens_reserved)

    def cost_remaining(self) -> float | None:
        if self.cost_limit is None:
            return None
        return max(0.0, self.cost_limit - self.cost_used - self.cost_reserved)

    def wall_ms_remaining(self) -> int | None:
        if self.wall_ms_limit is None:
            return None
        return max(0, int(self.wall_ms_limit - self.wall_ms_used))

    def reserve(self, task_id: str, tokens: int, cost: float) -> None:
        """Reserve a task's worst case, or raise :class:`BudgetExceeded` and change nothing."""
        if task_id in self._reserved:
            raise ValueError(f"task {task_id!r} already holds a reservation")
        tokens_left = self.tokens_remaining()
        if tokens_left is not None and tokens > tokens_left:
            raise BudgetExceeded(
                "tokens", f"max_tokens {tokens} exceeds the session's remaining token budget {tokens_left}"
            )
        cost_left = self.cost_remaining()
        # A tiny tolerance keeps float rounding from refusing an exactly affordable task.
        if cost_left is not None and cost > cost_left + 1e-9:
            raise BudgetExceeded(
                "cost", f"worst-case cost {cost:.6g} exceeds the session's remaining cost budget {cost_left:.6g}"
            )
        wall_left = self.wall_ms_remaining()
        if wall_left is not None and wall_left <= 0:
            raise BudgetExceeded("wall_ms", "the session's wall-time budget is spent")
        self._reserved[task_id] = (tokens, cost)
        self.tokens_reserved += tokens
        self.cost_reserved += cost

    def _unreserve(self, task_id: str) -> tuple[int, float] | None:
        reservation = self._reserved.pop(task_id, None)
        if reservation is not None:
            self.tokens_reserved -= reservation[0]
            self.cost_reserved = max(0.0, self.cost_reserved - reservation[1]) if self._reserved else 0.0
        return reservation

    def release(self, task_id: str) -> None:
        """Drop a reservation that never ran (e.g. the queue refused the task)."""
        self._unreserve(task_id)

    def settle(self, task_id: str, tokens: int, cost: float) -> None:
        """Replace a task's reservation by what it really used (never more than reserved).

        A task without a reservation (admitted before the session had this budget) is not charged.
        """
        reservation = self._unreserve(task_id)
        if reservation is None:
            return
        reserved_tokens, reserved_cost = reservation
        self.tokens_used += min(tokens, reserved_tokens)
        self.cost_used += min(cost, reserved_cost)

    def charge_wall(self, ms: float) -> bool:
        """Charge decode time; False once the wall-time budget is spent (the caller stops)."""
        if self.wall_ms_limit is None:
            self.wall_ms_used += ms
            return True
        self.wall_ms_used = min(float(self.wall_ms_limit), self.wall_ms_used + ms)
        return self.wall_ms_used < self.wall_ms_limit
