"""The model catalog and its trust verification (OC-CLI-2101); no HTTP here.

An entry says which files (cached on this machine) make up a model, what they must hash to, who
signed that digest and which trust policy applies. :meth:`Catalog.verify` hashes the real files and
checks Ed25519 signatures against the configured trusted keys; the orchestrator calls
:meth:`Catalog.check_admissible` on every admission and :meth:`Catalog.drain_deadline` to end work
on a retired model.

Signing a single-file model (the digest is ``sha256:`` plus ``sha256sum``'s hex)::

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    signature = base64.b64encode(private_key.sign(b"sha256:<hex>")).decode()
"""

from __future__ import annotations

from llama_orch.catalog._catalog import CATALOG_FILE, DEFAULT_POLICY, Catalog, resolve_policy
from llama_orch.catalog._config import CatalogConfig, TrustPolicyConfig
from llama_orch.catalog._verify import (
    VerificationStopped,
    load_public_key,
    overall_digest,
    sha256_file,
    verify_entry,
)

__all__ = [
    "CATALOG_FILE",
    "DEFAULT_POLICY",
    "Catalog",
    "CatalogConfig",
    "TrustPolicyConfig",
    "VerificationStopped",
    "load_public_key",
    "overall_digest",
    "resolve_policy",
    "sha256_file",
    "verify_entry",
]
