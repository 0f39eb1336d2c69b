"""Recipe sections -> the real library config objects, keys taken literally.

`recipe.sft` are `trl.SFTConfig` keys, `recipe.lora` are `peft.LoraConfig` keys; a key either
class does not know is refused with its name and the closest real key, before any model loads.
QLoRA is a setting (`method: qlora`), not a second code path: it only adds the 4-bit
quantization config (NF4, double quantization, bf16 compute) to the same model load.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any


class RecipeKeyError(ValueError):
    """A recipe key that the library config class does not have."""


def _check_keys(values: dict[str, Any], cls: type, section: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RecipeKeyError(
                f"recipe.{section}: {key!r} is not a {cls.__module__.split('.')[0]}.{cls.__name__} field{hint}"
            )


def check_recipe_keys(recipe_sft: dict[str, Any], recipe_lora: dict[str, Any]) -> None:
    """Refuse unknown `sft`/`lora` keys without building anything (usable on any machine)."""
    from peft import LoraConfig
    from trl import SFTConfig

    _check_keys(recipe_sft, SFTConfig, "sft")
    _check_keys(recipe_lora, LoraConfig, "lora")


def sft_config(recipe_sft: dict[str, Any], output_dir: str, **overrides: Any):
    """`trl.SFTConfig(**recipe.sft, output_dir=..., **overrides)` after checking every key.

    `overrides` are what the run decides, not the recipe: output folder, seed, step limits in tests.
    Defaults that differ from TRL's: `report_to="none"` (logging services are opt-in),
    `save_strategy="steps"` so `save_steps` checkpoints exist for `--resume`, and `disable_tqdm=True` when
    stderr is not a terminal (a log gets the printed loss dicts, not thousands of bar redraws).
    """
    import torch
    from trl import SFTConfig

    from serving.progress import interactive

    _check_keys({**recipe_sft, **overrides}, SFTConfig, "sft")
    # TRL defaults to bf16=True, which TrainingArguments refuses without a bf16 GPU; a recipe that does
    # not ask for bf16 should still run on a CPU box (the demo recipes, tests).
    hardware = {} if torch.cuda.is_available() else {"bf16": False}
    console = {} if interactive() else {"disable_tqdm": True}
    values = {"report_to": "none", **hardware, **console, **recipe_sft, "output_dir": output_dir, **overrides}
    try:
        return SFTConfig(**values)
    except ValueError as err:
        raise RecipeKeyError(f"recipe.sft is not usable here: {err}") from None


def lora_config(recipe_lora: dict[str, Any]):
    """`peft.LoraConfig(**recipe.lora)`; `target_modules` defaults to all linear layers."""
    from peft import LoraConfig

    _check_keys(recipe_lora, LoraConfig, "lora")
    return LoraConfig(**{"target_modules": "all-linear", "task_type": "CAUSAL_LM", **recipe_lora})


def quantization_config(method: str):
    """The QLoRA setting: NF4 weights, double quantization, bf16 compute; None for other methods."""
    if method != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
