"""Generation settings: the sampling knobs shared by the registry, personas and the API.

This module only defines and validates the values; it knows nothing of llama.cpp
(the engine maps these fields onto `create_completion` arguments) nor of Gradio.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GenerationSettings(BaseModel):
    """Sampling settings for one generation; every field is range-checked at construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    top_k: int = Field(40, ge=0, le=1000)
    """Keep only the k most likely tokens (0 disables)."""
    max_new_tokens: int = Field(512, ge=1, le=8192)
    """Upper bound on generated tokens."""
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.0)
    """llama.cpp repetition penalty (1.0 disables)."""
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    """Sampling seed; None picks a fresh one per request."""

    def merged(self, **overrides: object) -> "GenerationSettings":
        """A copy with the given non-None fields replaced (and validated again)."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return GenerationSettings(**data)
