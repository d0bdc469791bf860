"""schemathesis hooks for the llama-orch contracts: the check that refusals are documented.

``schemathesis.toml`` (repository root) loads this file, so ``st run contracts/openapi/data.yaml
--checks all`` from the repository runs it; ``tests/contract/test_schemathesis.py`` registers it
too. It makes ``positive_data_acceptance`` exact again where the TOML had to widen its statuses:

A request the schema accepts may still be refused for reasons JSON Schema cannot state (the
deployment's pools, the state of tasks, sessions and the catalog). Each operation lists those
answers in the YAML under ``x-llorch-refusals`` (status, error codes, for ``INVALID_PARAMS`` the
field locations, and why). This check fails a schema-valid request answered with a 4xx that is not
listed there, so ``400 INVALID_PARAMS`` on a valid request (a rule the schema does not state) is
still caught, while ``400 UNKNOWN_MODEL`` on a model this deployment does not serve is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import schemathesis
from schemathesis.checks import CHECKS
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, coverage_scenario

REFUSALS = "x-llorch-refusals"


def refusal_problem(operation: Mapping[str, Any], status: int, body: bytes | str | None) -> str | None:
    """Why a 4xx answer to a schema-valid request of ``operation`` is not a documented refusal
    (None when it is one). Pure, so that the project's tests can check it on their own."""
    if not 400 <= status < 500 or status == 401:  # 401: credentials are not the schema's business
        return None
    try:
        envelope = json.loads(body or b"")
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), str):
        return f"{status} without an error envelope"
    code = envelope["code"]
    details = envelope.get("details")
    errors = details.get("errors") if isinstance(details, dict) else None
    locs = {str(e.get("loc")) for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    for refusal in operation.get(REFUSALS) or ():
        if refusal.get("status") != status or code not in refusal.get("codes", ()):
            continue
        allowed: Sequence[str] | None = refusal.get("locs")
        if allowed is None or (locs and locs <= set(allowed)):
            return None
    where = f" at {', '.join(sorted(locs))}" if locs else ""
    return (
        f"a request the schema accepts was refused {status} {code}{where}, which the operation's "
        f"{REFUSALS} does not list: state the rule in the schema, or document the refusal"
    )


def refusals_are_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request is refused only as its operation's ``x-llorch-refusals`` says."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    # Coverage probes of the request's shape (another method, a missing Content-Type) are not
    # valid data whatever their generation mode says; the built-in check skips them too.
    if coverage_scenario(case) in REQUEST_SHAPE_PROBES:
        return None
    operation = case.operation.definition.raw
    problem = refusal_problem(operation, response.status_code, response.content)
    if problem is not None:
        raise AssertionError(problem)
    return None


# Registered once per process: schemathesis executes this file for schemathesis.toml (as its own
# module) and the project's tests import it as tests.contract.schemathesis_hooks; the same check
# from both would otherwise be refused as a second check of that name.
if refusals_are_documented.__name__ not in CHECKS.get_all_names():
    schemathesis.check(refusals_are_documented)
