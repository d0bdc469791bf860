"""What the schemathesis tests really ran, for the summary line at the end of the pytest run.

``tests/contract/test_schemathesis.py`` counts every generated case it sends (and the operation
it belongs to) and every step of the stateful runs; ``tests/contract/conftest.py`` prints the
totals in pytest's terminal summary, so the CI log shows how much was checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tally:
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    stateful_scenarios: int = 0
    stateful_steps: int = 0
    stateful_operations: set[str] = field(default_factory=set)

    def case(self, schema: str, operation: str) -> None:
        self.cases += 1
        self.operations.add(f"{schema} {operation}")

    def step(self, schema: str, operation: str) -> None:
        self.stateful_steps += 1
        self.stateful_operations.add(f"{schema} {operation}")

    @property
    def ran(self) -> bool:
        return bool(self.cases or self.stateful_steps)

    def summary(self) -> str:
        return (
            f"schemathesis: {self.cases} cases, {len(self.operations)} operations, "
            f"stateful: {self.stateful_steps} steps in {self.stateful_scenarios} scenarios "
            f"over {len(self.stateful_operations)} operations"
        )


TALLY = Tally()
