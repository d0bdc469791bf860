"""The base of every configuration model: unknown keys are refused, so a typo in a YAML file is
an error naming the key, not a setting silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


__all__ = ["StrictModel"]
