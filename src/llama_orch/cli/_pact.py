"""Replaying a Pact file (specification v2/v3) against a live provider, and matching its answers.

The consumer side of OC-CLI-2603 for operators: ``llama-orch contract verify`` sends each
interaction's request to a running orchestratord and checks the answer the way the Pact reference
verifier does for the rules our pacts use:

- the status is the expected one;
- every expected header is there (names case-insensitive), equal to the expected value (split on
  commas; ``Content-Type`` by media type and the parameters the pact names) unless a rule says
  otherwise;
- a JSON body holds every expected key (extra keys are fine), arrays have the expected length and
  values are equal, unless a matching rule applies: ``type`` (same JSON type; on arrays ``min``/``max``
  and every item like the first expected one), ``regex``, ``integer``, ``number``, ``decimal``,
  ``boolean``, ``null``, ``equality``, ``include``. A rule applies to its path and to everything below
  it (``like({...})`` matches a whole object by type); the most specific rule wins. A text body is
  compared with its ``$`` rule, or for equality.

Pure except :func:`replay` (HTTP, through httpx); the command is :mod:`llama_orch.cli._contract`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

Json = Any
Token = str | int  # a key, or an array index
RuleToken = str | int  # a key, "*" (any key), "[*]" (any index) or an index

__all__ = [
    "Interaction",
    "Outcome",
    "PactFileError",
    "ProviderUnreachableError",
    "load_pact",
    "match_response",
    "replay",
]


class PactFileError(Exception):
    """The pact file is missing, is not JSON, or is not a pact this verifier reads."""


class ProviderUnreachableError(Exception):
    """Nothing answers at the provider's base URL."""


@dataclass(frozen=True)
class Interaction:
    description: str
    provider_state: str  # "" when none
    request: Mapping[str, Any]
    response: Mapping[str, Any]


@dataclass
class Outcome:
    description: str
    provider_state: str
    result: Literal["passed", "failed", "skipped"]
    mismatches: list[str] = field(default_factory=list)
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "provider_state": self.provider_state or None,
            "result": self.result,
            "mismatches": self.mismatches,
            "reason": self.reason,
        }


# -- the pact file ---------------------------------------------------------------------------------


def load_pact(path: Path) -> tuple[dict[str, Any], list[Interaction]]:
    """The pact's metadata (consumer, provider, specification) and its interactions."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PactFileError(f"pact file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PactFileError(f"pact file {path} cannot be read: {exc}") from None
    except ValueError as exc:
        raise PactFileError(f"pact file {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("interactions"), list):
        raise PactFileError(f"pact file {path} has no 'interactions' list")
    version = str(((doc.get("metadata") or {}).get("pactSpecification") or {}).get("version", "2.0.0"))
    if not version.startswith(("1.", "2.", "3.")):
        raise PactFileError(f"pact file {path}: specification {version} is not read here (only v1-v3)")
    interactions = []
    for index, raw in enumerate(doc["interactions"]):
        where = f"pact file {path}, interaction {index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("description"), str):
            raise PactFileError(f"{where}: no description")
        request, response = raw.get("request"), raw.get("response")
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise PactFileError(f"{where} ({raw['description']!r}): no request method")
        if not isinstance(request.get("path"), str) or not request["path"].startswith("/"):
            raise PactFileError(f"{where} ({raw['description']!r}): no request path")
        if not isinstance(response, dict) or not isinstance(response.get("status"), int):
            raise PactFileError(f"{where} ({raw['description']!r}): no response status")
        states = raw.get("providerStates")
        if states is None and isinstance(raw.get("providerState"), str):  # v2
            states = [{"name": raw["providerState"]}]
        names = [s.get("name", "") for s in states or () if isinstance(s, dict)]
        if len(names) > 1:
            raise PactFileError(f"{where} ({raw['description']!r}): more than one provider state")
        interactions.append(Interaction(raw["description"], names[0] if names else "", request, response))
    descriptions = [i.description for i in interactions]
    if len(set(descriptions)) != len(descriptions):
        raise PactFileError(f"pact file {path}: interaction descriptions are not unique")
    meta = {
        "consumer": (doc.get("consumer") or {}).get("name"),
        "provider": (doc.get("provider") or {}).get("name"),
        "specification": version,
    }
    return meta, interactions


# -- matching rules --------------------------------------------------------------------------------

_RULE_TOKEN = re.compile(r"\.([^.\[\]]+)|\[\*\]|\[(\d+)\]|\['([^']*)'\]")


def _rule_path(path: str) -> list[RuleToken]:
    if not path.startswith("$"):
        path = "$." + path  # v2 header/body rules may omit the root
    tokens: list[RuleToken] = []
    rest = path[1:]
    while rest:
        m = _RULE_TOKEN.match(rest)
        if m is None:
            raise PactFileError(f"matching rule path {path!r} is not understood")
        if m.group(0) == "[*]":
            tokens.append("[*]")
        elif m.group(2) is not None:
            tokens.append(int(m.group(2)))
        else:
            tokens.append(m.group(1) if m.group(1) is not None else m.group(3))
        rest = rest[m.end() :]
    return tokens


def _token_matches(rule: RuleToken, token: Token) -> bool:
    if rule == "[*]":
        return isinstance(token, int)
    if rule == "*":
        return isinstance(token, str)
    return type(rule) is type(token) and rule == token


@dataclass(frozen=True)
class _Rule:
    path: tuple[RuleToken, ...]
    matchers: tuple[Mapping[str, Any], ...]
    combine: str


def _body_rules(message: Mapping[str, Any]) -> list[_Rule]:
    rules = message.get("matchingRules") or {}
    if not isinstance(rules, dict):
        raise PactFileError("matchingRules is not an object")
    body = rules.get("body")
    if body is None:  # v2: flat {"$.body.x": {...}}
        body = {k.replace("$.body", "$", 1): v for k, v in rules.items() if k.startswith("$.body")}
    return [_rule(path, spec) for path, spec in body.items()]


def _rule(path: str, spec: Any) -> _Rule:
    if isinstance(spec, dict) and isinstance(spec.get("matchers"), list):
        return _Rule(tuple(_rule_path(path)), tuple(spec["matchers"]), str(spec.get("combine", "AND")))
    if isinstance(spec, dict):  # v2: the matcher itself
        return _Rule(tuple(_rule_path(path)), (spec,), "AND")
    raise PactFileError(f"matching rule at {path!r} is not an object")


def _header_rules(message: Mapping[str, Any]) -> dict[str, _Rule]:
    rules = message.get("matchingRules") or {}
    headers = rules.get("header")
    if headers is None:  # v2: {"$.headers.Name": {...}}
        headers = {k[len("$.headers.") :]: v for k, v in rules.items() if k.startswith("$.headers.")}
    return {name.lower(): _rule("$", spec) for name, spec in headers.items()}


def _best_rule(rules: Sequence[_Rule], path: Sequence[Token]) -> tuple[_Rule | None, bool]:
    """The most specific rule whose path is ``path`` or above it, and whether it is exactly ``path``."""
    best: tuple[int, int] | None = None
    chosen: _Rule | None = None
    for rule in rules:
        if len(rule.path) > len(path) or not all(_token_matches(r, t) for r, t in zip(rule.path, path, strict=False)):
            continue
        exact = sum(1 for r in rule.path if r not in ("*", "[*]"))
        weight = (len(rule.path), exact)
        if best is None or weight > best:
            best, chosen = weight, rule
    return chosen, chosen is not None and len(chosen.path) == len(path)


def _show(path: Sequence[Token]) -> str:
    return "$" + "".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in path)


def _kind(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same(expected: Json, actual: Json) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual) and _kind(expected) == _kind(actual)


def _brief(value: Json) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _as_text(value: Json) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    """A pact regex (Rust's syntax) as a Python one: ``\\z`` (end of text) is Python's ``\\Z``."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\Z" if nxt == "z" else char + nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise PactFileError(f"matching rule regex {pattern!r} is not valid: {exc}") from None


def _apply(matcher: Mapping[str, Any], expected: Json, actual: Json) -> str | None:
    """Why ``actual`` fails ``matcher`` (None when it passes); arrays' items are compared elsewhere."""
    kind = matcher.get("match", "type")
    if kind in ("type", "min", "max"):
        if _kind(actual) != _kind(expected):
            return f"expected a {_kind(expected)} (like {_brief(expected)}), got {_brief(actual)}"
        if isinstance(actual, list):
            if "min" in matcher and len(actual) < int(matcher["min"]):
                return f"expected at least {matcher['min']} items, got {len(actual)}"
            if "max" in matcher and len(actual) > int(matcher["max"]):
                return f"expected at most {matcher['max']} items, got {len(actual)}"
        return None
    if kind == "regex":
        pattern = str(matcher.get("regex", ""))
        if isinstance(actual, dict | list) or actual is None:
            return f"expected a value matching /{pattern}/, got {_brief(actual)}"
        if _regex(pattern).search(_as_text(actual)) is None:
            return f"expected a value matching /{pattern}/, got {_brief(actual)}"
        return None
    if kind == "integer":
        return None if type(actual) is int else f"expected an integer, got {_brief(actual)}"
    if kind in ("number", "decimal"):
        ok = isinstance(actual, int | float) and not isinstance(actual, bool)
        if kind == "decimal":
            ok = isinstance(actual, float)
        return None if ok else f"expected a {kind}, got {_brief(actual)}"
    if kind == "boolean":
        return None if isinstance(actual, bool) else f"expected a boolean, got {_brief(actual)}"
    if kind == "null":
        return None if actual is None else f"expected null, got {_brief(actual)}"
    if kind == "equality":
        return None if _same(expected, actual) else f"expected {_brief(expected)}, got {_brief(actual)}"
    if kind == "include":
        value = str(matcher.get("value", ""))
        return None if value in _as_text(actual) else f"expected a value including {value!r}, got {_brief(actual)}"
    raise PactFileError(f"matching rule {kind!r} is not supported by this verifier")


def _check_rule(rule: _Rule, expected: Json, actual: Json) -> str | None:
    problems = [p for p in (_apply(m, expected, actual) for m in rule.matchers) if p is not None]
    if rule.combine.upper() == "OR":
        return problems[0] if len(problems) == len(rule.matchers) and problems else None
    return problems[0] if problems else None


def _compare(rules: Sequence[_Rule], path: list[Token], expected: Json, actual: Json, out: list[str]) -> None:
    rule, exact = _best_rule(rules, path)
    where = _show(path)
    if rule is not None:
        # Structure follows the expected example under a type rule; anything else decides here.
        if all(m.get("match", "type") in ("type", "min", "max") for m in rule.matchers):
            problem = _check_rule(rule, expected, actual) if exact or not isinstance(expected, list) else None
            if problem is None and _kind(expected) != _kind(actual):
                problem = f"expected a {_kind(expected)} (like {_brief(expected)}), got {_brief(actual)}"
            if problem is not None:
                out.append(f"{where}: {problem}")
                return
            if isinstance(expected, dict):
                _compare_object(rules, path, expected, actual, out)
            elif isinstance(expected, list) and expected:
                for index, item in enumerate(actual):
                    template = expected[index] if index < len(expected) else expected[0]
                    _compare(rules, [*path, index], template, item, out)
            return
        problem = _check_rule(rule, expected, actual)
        if problem is not None:
            out.append(f"{where}: {problem}")
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            out.append(f"{where}: expected an object, got {_brief(actual)}")
            return
        _compare_object(rules, path, expected, actual, out)
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            out.append(f"{where}: expected an array, got {_brief(actual)}")
            return
        if len(actual) != len(expected):
            out.append(f"{where}: expected {len(expected)} items, got {len(actual)}")
            return
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _compare(rules, [*path, index], e, a, out)
    elif not _same(expected, actual):
        out.append(f"{where}: expected {_brief(expected)}, got {_brief(actual)}")


def _compare_object(
    rules: Sequence[_Rule], path: list[Token], expected: dict[str, Json], actual: dict[str, Json], out: list[str]
) -> None:
    for key, value in expected.items():
        if key not in actual:
            out.append(f"{_show([*path, key])}: missing (expected {_brief(value)})")
        else:
            _compare(rules, [*path, key], value, actual[key], out)


def _media(value: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = value.partition(";")
    params = {}
    for part in rest.split(";"):
        name, sep, val = part.strip().partition("=")
        if sep:
            params[name.strip().lower()] = val.strip().strip('"').lower()
    return kind.strip().lower(), params


def _header_values(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def match_response(expected: Mapping[str, Any], status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """Every way the answer (``status``, ``headers`` with lower-case names, ``body``) differs from
    the pact's ``expected`` response; empty when it matches."""
    problems: list[str] = []
    if status != expected["status"]:
        problems.append(f"status: expected {expected['status']}, got {status}")
    header_rules = _header_rules(expected)
    for name, want_raw in (expected.get("headers") or {}).items():
        want = _header_values(want_raw)
        got = headers.get(name.lower())
        if got is None:
            problems.append(f"header {name}: missing (expected {want!r})")
            continue
        rule = header_rules.get(name.lower())
        if rule is not None:
            problem = _check_rule(rule, want, got)
            if problem is not None:
                problems.append(f"header {name}: {problem}")
        elif name.lower() == "content-type":
            want_type, want_params = _media(want)
            got_type, got_params = _media(got)
            if want_type != got_type or any(got_params.get(k) != v for k, v in want_params.items()):
                problems.append(f"header {name}: expected {want!r}, got {got!r}")
        elif [v.strip() for v in want.split(",")] != [v.strip() for v in got.split(",")]:
            problems.append(f"header {name}: expected {want!r}, got {got!r}")
    if "body" not in expected:
        return problems
    want_body = expected["body"]
    rules = _body_rules(expected)
    content_type = _media(headers.get("content-type", ""))[0]
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if isinstance(want_body, dict | list) or (is_json and not isinstance(want_body, str)):
        try:
            got_body = json.loads(body) if body else None
        except ValueError:
            problems.append(f"body: expected JSON, got {body[:120]!r}")
            return problems
        _compare(rules, [], want_body, got_body, problems)
    elif want_body is None:
        if body.strip():
            problems.append(f"body: expected none, got {body[:120]!r}")
    else:
        text = body.decode("utf-8", errors="replace")
        if is_json and isinstance(want_body, str):  # a JSON string body
            try:
                _compare(rules, [], want_body, json.loads(body), problems)
            except ValueError:
                problems.append(f"body: expected JSON, got {body[:120]!r}")
            return problems
        _compare(rules, [], str(want_body), text, problems)
    return problems


# -- replaying -------------------------------------------------------------------------------------


def _request_body(request: Mapping[str, Any], headers: dict[str, str]) -> bytes | None:
    if "body" not in request or request["body"] is None:
        return None
    body = request["body"]
    if isinstance(body, str):
        return body.encode("utf-8")
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _query(request: Mapping[str, Any]) -> httpx.QueryParams | None:
    query = request.get("query")
    if not query:
        return None
    if isinstance(query, str):  # v2: the query string itself
        return httpx.QueryParams(query)
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, values in query.items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(name), str(value)))
    return httpx.QueryParams(pairs)


def replay(
    interactions: Sequence[Interaction],
    base_url: str,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    setups: Mapping[str, Callable[[], None]] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Send every interaction to ``base_url`` and match its answer: those without a provider state
    first (in the pact's order), as a fresh provider would see them, then those with one.

    An interaction whose provider state is not in ``setups`` is skipped; a state's setup runs
    before each interaction that names it, and one that raises skips that interaction (with why).
    Raises :class:`ProviderUnreachableError` when the server cannot be connected to at all.
    """
    setups = setups or {}
    outcomes: list[Outcome] = []
    base = base_url.rstrip("/")
    with httpx.Client(timeout=timeout, follow_redirects=False) as http:
        ordered = [i for i in interactions if not i.provider_state] + [i for i in interactions if i.provider_state]
        for interaction in ordered:
            state = interaction.provider_state
            outcome = _one(http, base, interaction, token, setups.get(state) if state else (lambda: None))
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


def _one(
    http: httpx.Client,
    base: str,
    interaction: Interaction,
    token: str | None,
    setup: Callable[[], None] | None,
) -> Outcome:
    state = interaction.provider_state
    if setup is None:
        return Outcome(interaction.description, state, "skipped", reason=f"needs provider state {state!r}")
    try:
        setup()
    except ProviderUnreachableError:
        raise
    except Exception as exc:
        reason = f"needs provider state {state!r}, which could not be set up: {type(exc).__name__}: {exc}"
        return Outcome(interaction.description, state, "skipped", reason=reason)
    request = interaction.request
    headers = {str(k): _header_values(v) for k, v in (request.get("headers") or {}).items()}
    if token and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = f"Bearer {token}"
    content = _request_body(request, headers)
    try:
        response = http.request(
            request["method"].upper(), base + request["path"], params=_query(request), headers=headers, content=content
        )
    except httpx.ConnectError as exc:
        raise ProviderUnreachableError(f"cannot connect to {base}: {exc}") from None
    except httpx.HTTPError as exc:
        return Outcome(interaction.description, state, "failed", [f"no complete answer: {type(exc).__name__}: {exc}"])
    received = {k.lower(): v for k, v in response.headers.items()}
    problems = match_response(interaction.response, response.status_code, received, response.content)
    return Outcome(interaction.description, state, "failed" if problems else "passed", problems)
