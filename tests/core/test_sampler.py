from __future__ import annotations

from llama_orch.core import SAMPLER_PROFILES
from llama_orch_api import TaskRequest


def test_default_profile_is_known_and_greedy() -> None:
    default = TaskRequest(prompt="x").sampler_profile_version
    profile = SAMPLER_PROFILES[default]
    assert profile.deterministic
    assert profile.temperature == 0.0


def test_profiles_are_versioned_and_documented() -> None:
    for name, profile in SAMPLER_PROFILES.items():
        assert name == profile.name
        assert name.startswith("llorch/") and "@" in name
        assert profile.notes
        assert set(profile.params()) >= {"temperature", "top_p", "top_k"}
