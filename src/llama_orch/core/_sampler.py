"""Stable sampler profiles (OC-CLI-2902).

A profile name is a promise: ``llorch/sampler@1`` always means the same parameters. A change of
parameters is a new version (``@2``), never an edit, so a recorded ``sampler_profile_version`` and
seed reproduce a run. Notes say how profiles relate.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SamplerProfileSpec:
    name: str
    temperature: float
    top_p: float
    top_k: int
    deterministic: bool
    notes: str
    extra: dict[str, float | int] = field(default_factory=dict)

    def params(self) -> dict[str, float | int]:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k, **self.extra}


SAMPLER_PROFILES: dict[str, SamplerProfileSpec] = {
    p.name: p
    for p in (
        SamplerProfileSpec(
            "llorch/sampler@1", 0.0, 1.0, 0, True,
            "Default. Greedy decoding: with a seed, byte-identical output on the same engine build, "
            "model digest and replica. Same parameters as llorch/greedy@1.",
        ),
        SamplerProfileSpec(
            "llorch/greedy@1", 0.0, 1.0, 0, True,
            "Alias of llorch/sampler@1 kept for clarity in agent configs.",
        ),
        SamplerProfileSpec(
            "llorch/balanced@1", 0.7, 0.9, 40, False,
            "Moderate sampling for drafting plans and prose; reproducible only with a seed, and byte for "
            "byte only with determinism 'strict' on a pool that offers it (the mock; managed llama.cpp, "
            "where a strict task runs alone with the prompt cache off): batching and prompt caching "
            "change llama.cpp's numerics for best-effort tasks.",
        ),
        SamplerProfileSpec(
            "llorch/creative@1", 1.0, 0.95, 0, False,
            "High-temperature sampling for brainstorming; reproducibility as llorch/balanced@1.",
        ),
    )
}  # fmt: skip
