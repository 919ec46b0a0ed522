"""The one base of every file modelyard reads (config, org profile, GPU offers, serving profiles, golden
sets): unknown keys are rejected, so a typo fails loudly instead of being silently ignored, and the parsed
value is frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
