"""The Llama 3.2 training chat template and the assistant-only loss mask it produces.

TRL 1.x cannot patch Llama 3.2's template with `{% generation %}` markers itself, so Iris ships
`llama3_training_template.jinja`: the model's template with markers around each assistant turn's
content and its `<|eot_id|>`. It must render byte-for-byte like the model's template (tests check
this); the model keeps its own template, the training one is only set on the training tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINING_TEMPLATE_PATH = Path(__file__).resolve().parent / "llama3_training_template.jinja"
DATE_STRING = "26 Jul 2024"  # fixed so rendered training text does not depend on today's date
TEMPLATE_KWARGS: dict[str, Any] = {"date_string": DATE_STRING}


def training_chat_template() -> str:
    """The Llama 3.2 template with `{% generation %}` markers."""
    return TRAINING_TEMPLATE_PATH.read_text(encoding="utf-8")


def render(tokenizer, messages: list[dict], chat_template: str | None = None, **kwargs: Any) -> str:
    """The conversation as text, with the fixed date string."""
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, **TEMPLATE_KWARGS, **kwargs
    )


def assistant_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, mask) where mask is 1 exactly on assistant tokens, each turn's `<|eot_id|>` included.

    This is the same call TRL makes when `assistant_only_loss=True` (see `SFTTrainer._prepare_dataset`).
    """
    out = tokenizer.apply_chat_template(
        messages, chat_template=training_chat_template(), tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True, **TEMPLATE_KWARGS,
    )
    return list(out["input_ids"]), list(out["assistant_masks"])


def count_tokens(tokenizer, example: dict) -> int:
    """Tokens of one prepared example (chat `messages` rendered with the template, or `text`)."""
    if "messages" in example:
        return len(tokenizer(render(tokenizer, example["messages"]), add_special_tokens=False)["input_ids"])
    return len(tokenizer(example["text"])["input_ids"]) + 1  # + eos, as TRL appends it
