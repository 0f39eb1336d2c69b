"""Generation settings: the sampling knobs shared by the registry, personas and the API.

This module only defines and validates the values; it knows nothing of llama.cpp
(the engine maps these fields onto `create_completion` arguments) nor of Gradio.
`VISITOR_KNOBS` is the one definition of what a visitor may choose: the pages draw their
sliders from it and `visitor_settings` checks UI events and API calls against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from serving.errors import InvalidInput


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
    ignore_eos: bool = False
    """Never end the answer before `max_new_tokens` (llama-server's `ignore_eos`): end-of-generation and
    template tokens are banned. For registry entries and personas only (benchmarks, tests); not a visitor knob."""

    def merged(self, **overrides: object) -> "GenerationSettings":
        """A copy with the given non-None fields replaced (and validated again)."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return GenerationSettings(**data)


@dataclass(frozen=True)
class Knob:
    """A setting a visitor may choose: its slider label, range and step."""

    label: str
    minimum: float
    maximum: float
    step: float


VISITOR_KNOBS = {  # narrower than GenerationSettings: personas may ask for more than a visitor
    "temperature": Knob("Temperature", 0.0, 2.0, 0.05),
    "top_p": Knob("Top-p", 0.05, 1.0, 0.05),
    "top_k": Knob("Top-k", 0, 200, 1),
    "max_new_tokens": Knob("Max new tokens", 8, 1024, 8),
    "repeat_penalty": Knob("Repetition penalty", 1.0, 2.0, 0.05),
}


def visitor_settings(base: GenerationSettings, **chosen: object) -> GenerationSettings:
    """`base` with the values a visitor chose (None keeps the base), each within `VISITOR_KNOBS`."""
    values = {name: _checked(name, value) for name, value in chosen.items() if value is not None}
    return base.merged(**values)


def _checked(name: str, value: object) -> float | int:
    knob = VISITOR_KNOBS.get(name)
    if knob is None:
        raise InvalidInput(f"Invalid setting {name}: it cannot be chosen here; use one of {', '.join(VISITOR_KNOBS)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"Invalid setting {name}: {value!r} is not a number; "
                           f"choose {knob.minimum}–{knob.maximum}.")
    if not knob.minimum <= value <= knob.maximum:
        raise InvalidInput(f"Invalid setting {name}: {value:g} is outside {knob.minimum:g}–{knob.maximum:g}; "
                           "choose a value in that range.")
    return int(value) if isinstance(knob.step, int) else float(value)


def visitor_seed(value: object) -> int | None:
    """A seed a visitor typed: empty means None (draw one), else a whole number in GenerationSettings' range."""
    if value is None or value == "":
        return None
    top = GenerationSettings.model_fields["seed"].metadata[-1].le
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or not 0 <= value <= top):
        raise InvalidInput(f"Invalid seed {value!r}: use a whole number from 0 to {top}, or leave it empty.")
    return int(value)
