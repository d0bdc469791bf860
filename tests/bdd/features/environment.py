"""behave hooks: one HTTP client per scenario, and nothing a scenario started outlives it."""

from __future__ import annotations

import os
from typing import Any

import httpx


def before_scenario(context: Any, scenario: Any) -> None:
    context.base = os.environ["LLORCH_BASE_URL"]
    context.http = httpx.Client(base_url=context.base, timeout=30)
    context.task_ids = []
    context.answers = []


def after_scenario(context: Any, scenario: Any) -> None:
    # Cancel whatever is still queued or running, so the next scenario finds an idle pool.
    for task_id in context.task_ids:
        context.http.post(f"/v1/tasks/{task_id}/cancel")
    context.http.close()
