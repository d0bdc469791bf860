"""Secrets out of prompts before they are stored: the one redactor of :mod:`llama_orch.policy`.

Kept under this name so that ``llama_orch.agents.redact_secrets`` (and this module) stay
importable; the patterns, the literals and the operator's configured patterns live in
:mod:`llama_orch.policy._redact`. Callers with a policy of their own pass their own ``redact``
function to :class:`~llama_orch.agents.AgentArtifacts`.
"""

from __future__ import annotations

from llama_orch.policy._redact import REDACTED, redact_secrets

__all__ = ["REDACTED", "redact_secrets"]
