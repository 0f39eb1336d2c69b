"""Training chat templates and the assistant-only loss mask they produce.

TRL 1.x cannot patch a model's template with `{% generation %}` markers itself, so Iris ships a
training copy per tokenizer family (`training.families`): `llama3_training_template.jinja` for Llama 3.2,
`chatml_training_template.jinja` for SmolLM2's ChatML. Each marks every assistant turn's content and its
end-of-turn token, and must render byte-for-byte like the model's own template (tests check this, and
`load_tokenizer` refuses a model whose template renders differently); the model keeps its own template,
the training one is only set on the training tokenizer.
"""

from __future__ import annotations

from typing import Any

from serving.config import TEMPLATE_DATE
from training.families import Family, by_name, of_tokenizer

TEMPLATE_KWARGS: dict[str, Any] = {"date_string": TEMPLATE_DATE}  # rendered text does not depend on today
# Rendered with both templates before training: a system turn, two exchanges and a generation prompt.
PROBE: tuple[list[dict], ...] = (
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}],
)


class TemplateMismatch(ValueError):
    """The family's training template would train on text the model's own template never produces."""


def training_chat_template(family: Family | str) -> str:
    """The family's chat template with `{% generation %}` markers."""
    return (by_name(family) if isinstance(family, str) else family).training_template_text()


def render(tokenizer, messages: list[dict], chat_template: str | None = None, **kwargs: Any) -> str:
    """The conversation as text, with the fixed date string."""
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, **TEMPLATE_KWARGS, **kwargs
    )


def check_renders_like(tokenizer, model_template: str, family: Family) -> None:
    """Raise TemplateMismatch unless the family's training template renders `PROBE` exactly like `model_template`."""
    for messages in PROBE:
        want = render(tokenizer, messages, model_template, add_generation_prompt=True)
        if render(tokenizer, messages, family.training_template_text(), add_generation_prompt=True) != want:
            raise TemplateMismatch(
                f"the {family.name} training template ({family.training_template}) does not render like this "
                f"model's chat template; add a family or a training template for it. The model renders:\n{want}")


def assistant_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, mask) where mask is 1 exactly on assistant tokens, each turn's end-of-turn token included.

    This is the same call TRL makes when `assistant_only_loss=True` (see `SFTTrainer._prepare_dataset`).
    """
    out = tokenizer.apply_chat_template(
        messages, chat_template=training_chat_template(of_tokenizer(tokenizer)), tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True, **TEMPLATE_KWARGS,
    )
    return list(out["input_ids"]), list(out["assistant_masks"])


def count_tokens(tokenizer, example: dict) -> int:
    """Tokens of one prepared example (chat `messages` rendered with the template, or `text`)."""
    if "messages" in example:
        return len(tokenizer(render(tokenizer, example["messages"]), add_special_tokens=False)["input_ids"])
    return len(tokenizer(example["text"])["input_ids"]) + 1  # + eos, as TRL appends it
