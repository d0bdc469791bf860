"""Static bearer tokens, stored hashed (sha256) and compared in constant time.

Tokens should be long random strings (``orchestratord --hash-token`` makes one and prints its
hash); with that much entropy a fast unsalted hash is the usual choice (it is what GitHub and
others store for API tokens): the config and the process hold only digests.

Every presented token is hashed and compared with every stored digest using
``hmac.compare_digest``, without stopping at a match, so the time taken does not depend on which
entry (if any) matched, nor on how many leading bytes agreed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from llama_orch.auth._identity import Identity, Scope


def hash_token(token: str) -> str:
    """The stored form of ``token``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe), prefixed so the redactor and humans recognise it."""
    return "llorch_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class StoredToken:
    subject: str
    digest: bytes
    scopes: frozenset[Scope]


class StaticTokens:
    """The configured tokens; :meth:`verify` answers the identity of a presented token, or None."""

    def __init__(self, entries: Iterable[tuple[str, str, Iterable[Scope]]]) -> None:
        stored: list[StoredToken] = []
        for subject, digest, scopes in entries:
            algo, _, hexdigest = digest.partition(":")
            if algo != "sha256" or len(hexdigest) != 64:
                raise ValueError(f"token for {subject!r}: the hash must be 'sha256:<64 hex digits>'")
            stored.append(StoredToken(subject, bytes.fromhex(hexdigest), frozenset(scopes)))
        self._stored = tuple(stored)

    def __len__(self) -> int:
        return len(self._stored)

    def verify(self, token: str) -> Identity | None:
        presented = hashlib.sha256(token.encode()).digest()
        found: StoredToken | None = None
        for entry in self._stored:
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry
        return None if found is None else Identity(found.subject, "token", found.scopes)
