"""mTLS: client certificates verified against a configured CA, and the identity a certificate names.

:func:`server_ssl_context` builds the server side (TLS 1.2+, the CA that signs client certificates,
``required`` → the handshake fails without a valid one; otherwise a client may fall back to a
bearer token). The peer certificate Python's ``ssl`` verified (``getpeercert()``, a dict) names
the identity: its first URI SAN (e.g. a SPIFFE id), else its first DNS SAN, else its subject CN.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llama_orch.auth._errors import Unauthenticated
from llama_orch.auth._identity import Identity, Scope


def server_ssl_context(
    cert_file: Path, key_file: Path, client_ca_file: Path, *, required: bool = True
) -> ssl.SSLContext:
    """A server context that verifies client certificates against ``client_ca_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` (or the system store) and presenting ``cert_file``."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def certificate_subject(peercert: Mapping[str, Any]) -> str | None:
    """The name a verified peer certificate stands for (URI SAN, DNS SAN, then CN)."""
    sans = [tuple(item) for item in peercert.get("subjectAltName", ()) if len(item) == 2]
    for wanted in ("URI", "DNS"):
        for kind, value in sans:
            if kind == wanted and value:
                return str(value)
    for rdn in peercert.get("subject", ()):
        for attr in rdn:
            if len(attr) == 2 and attr[0] == "commonName" and attr[1]:
                return str(attr[1])
    return None


class CertificateIdentities:
    """Maps verified client certificates to identities: ``subjects`` names scopes per certificate
    subject; any other certificate the CA signed gets ``default_scopes``."""

    def __init__(
        self, subjects: Mapping[str, frozenset[Scope]], default_scopes: frozenset[Scope] = frozenset()
    ) -> None:
        self._subjects = dict(subjects)
        self._default = default_scopes

    def identity(self, peercert: Mapping[str, Any] | None) -> Identity:
        if not peercert:
            raise Unauthenticated("certificate", "no verified client certificate", method="mtls")
        subject = certificate_subject(peercert)
        if subject is None:
            raise Unauthenticated("certificate", "the client certificate names no subject", method="mtls")
        return Identity(subject[:256], "mtls", self._subjects.get(subject, self._default))
