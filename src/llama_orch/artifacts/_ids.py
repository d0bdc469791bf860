"""Content addresses: how an artifact's id and its stored bytes are derived from what was posted."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from llama_orch.artifacts import _jcs
from llama_orch.errors import OrchError
from llama_orch_api import ErrorCode

_ID = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")

Encoding = Literal["text", "json"]
"""How content is stored: ``text`` is the UTF-8 of a string, ``json`` its RFC 8785 canonical JSON."""


def artifact_id(kind: str, content: JsonValue, parent: str | None) -> str:
    """The id of an artifact: ``sha256:`` + hex SHA-256 of the RFC 8785 canonical JSON of
    ``{"kind": kind, "content": content, "parent": parent}`` (``parent`` is ``null`` for a root).

    >>> artifact_id("plan", "# Plan", None)
    'sha256:56ea92b49e35a1a2d2bf80904fab4a2c69a39d26fb29638ec34f9f3a0a81ae74'
    """
    envelope = _jcs.dumps({"kind": kind, "content": content, "parent": parent})
    return "sha256:" + hashlib.sha256(envelope).hexdigest()


@dataclass(frozen=True)
class Encoded:
    """One artifact's content, ready to store."""

    id: str
    data: bytes
    encoding: Encoding
    sha256: str
    """Hex SHA-256 of ``data``: the blob's own address (shared by artifacts with equal content)."""


def encode(kind: str, content: JsonValue, parent: str | None) -> Encoded:
    """Canonicalize ``content`` once and derive both the id and the stored bytes from it.

    Equal to :func:`artifact_id` by construction: JCS sorts object keys, and ``content`` < ``kind``
    < ``parent``, so the canonical envelope is the three canonical members spliced in that order.
    Splicing saves canonicalizing a large content twice.
    Raises ``INVALID_PARAMS`` for values JCS refuses (integers beyond ±2**53, NaN, infinities).
    """
    try:
        canonical = _jcs.dumps(content)
    except _jcs.CanonicalizationError as exc:
        raise OrchError(
            ErrorCode.INVALID_PARAMS,
            f"invalid request: content: not representable as RFC 8785 JSON ({exc})",
            details={"errors": [{"loc": "content", "msg": str(exc), "type": type(exc).__name__}]},
        ) from None
    digest = hashlib.sha256(b'{"content":')
    digest.update(canonical)
    digest.update(b',"kind":' + _jcs.dumps(kind) + b',"parent":' + _jcs.dumps(parent) + b"}")
    if isinstance(content, str):
        data = content.encode("utf-8")
        return Encoded("sha256:" + digest.hexdigest(), data, "text", hashlib.sha256(data).hexdigest())
    return Encoded("sha256:" + digest.hexdigest(), canonical, "json", hashlib.sha256(canonical).hexdigest())


def decode(data: bytes, encoding: Encoding) -> JsonValue:
    """The content as posted, from its stored bytes."""
    if encoding == "text":
        return data.decode("utf-8")
    value: JsonValue = json.loads(data)
    return value


def normalize_id(text: str) -> str:
    """``sha256:<hex>`` from an id given with or without its ``sha256:`` prefix, in either case.

    Raises ``INVALID_PARAMS`` for anything else (without echoing it: it may be anything).
    """
    match = _ID.fullmatch(text)
    if match is None:
        raise OrchError(ErrorCode.INVALID_PARAMS, "invalid request: not an artifact id (sha256:<64 hex digits>)")
    return "sha256:" + match.group(1).lower()
