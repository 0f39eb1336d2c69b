"""The training chat template renders exactly like the model's Llama 3.2 template, and its
assistant mask covers exactly the assistant turns (content + <|eot_id|>); recipe keys are checked
against the real TRL/peft config classes."""

from __future__ import annotations

import pytest

from training.sft.template import assistant_mask, render, training_chat_template
from training.tokenizer import build_llama3_tokenizer, chat_template

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": " 4 "}, {"role": "user", "content": "And 3+3?"},
     {"role": "assistant", "content": "6, because 3 + 3 = 6.\n\nDone."}],
    [{"role": "user", "content": "Line one\nline two"}, {"role": "assistant", "content": "(ok) {json: true}"},
     {"role": "user", "content": "¿Qué tal? 日本語 3.14"}, {"role": "assistant", "content": "Très bien — 好 😀"}],
    [{"role": "system", "content": "sys"}, {"role": "user", "content": "only a question"}],
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [m["content"] for conv in CONVERSATIONS for m in conv] * 5
    return build_llama3_tokenizer(texts, vocab_size=800)


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_training_template_renders_identically(tokenizer, conversation, add_generation_prompt):
    model_text = render(tokenizer, conversation, chat_template(), add_generation_prompt=add_generation_prompt)
    training_text = render(tokenizer, conversation, training_chat_template("llama3-bpe"), add_generation_prompt=add_generation_prompt)
    assert training_text == model_text


def test_training_template_renders_identically_with_tools(tokenizer):
    tools = [{"type": "function", "function": {"name": "lookup", "description": "find", "parameters": {}}}]
    conversation = [{"role": "user", "content": "find x"},
                    {"role": "assistant", "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "x"}}}]},
                    {"role": "tool", "content": "found"}, {"role": "assistant", "content": "x is found"}]
    a = render(tokenizer, conversation, chat_template(), tools=tools)
    b = render(tokenizer, conversation, training_chat_template("llama3-bpe"), tools=tools)
    assert a == b


def expected_assistant_positions(tokenizer, ids: list[int]) -> set[int]:
    """Positions after each '<|start_header_id|>assistant<|end_header_id|>\\n\\n' up to and including
    the next <|eot_id|>, found from the token ids alone (independent of the template's markers)."""
    start, end, eot = (tokenizer.convert_tokens_to_ids(t) for t in ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"))
    positions, i = set(), 0
    while i < len(ids):
        if ids[i] == start:
            j = ids.index(end, i)
            role = tokenizer.decode(ids[i + 1:j])
            k = j + 1
            while tokenizer.decode(ids[j + 1:k + 1]) in ("\n", "\n\n") and k < len(ids):
                k += 1  # skip the header's blank line
            if role == "assistant":
                stop = ids.index(eot, k)
                positions.update(range(k, stop + 1))
            i = k
        else:
            i += 1
    return positions


@pytest.mark.parametrize("conversation", CONVERSATIONS[:3])
def test_mask_is_exactly_the_assistant_spans_with_eot(tokenizer, conversation):
    ids, mask = assistant_mask(tokenizer, conversation)
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id  # one BOS, from the template
    masked = {i for i, m in enumerate(mask) if m}
    assert masked == expected_assistant_positions(tokenizer, ids)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    answers = [m["content"].strip() for m in conversation if m["role"] == "assistant"]
    assert tokenizer.decode([ids[i] for i in sorted(masked)]) == "<|eot_id|>".join(answers) + "<|eot_id|>"
    assert sum(1 for i in masked if ids[i] == eot) == len(answers)


def test_every_registry_recipe_uses_real_trl_and_peft_keys(registry):
    """Hub fine-tunes only: the demo recipes are trained by training/demo's own loop (build-demo)."""
    from training.sft.config import check_recipe_keys

    checked = [e.id for e in registry.models.values()
               if e.recipe and e.recipe.method in ("lora", "qlora") and e.kind != "demo"]
    for model_id in checked:
        recipe = registry.get(model_id).recipe
        check_recipe_keys(recipe.sft, recipe.lora)
    assert "llama-3.2-1b-finetome" in checked


def test_unknown_recipe_keys_are_named():
    from training.sft.config import RecipeKeyError, lora_config, sft_config

    with pytest.raises(RecipeKeyError, match=r"recipe\.sft: 'max_seq_length' is not a trl\.SFTConfig field; did you mean 'max_length'"):
        sft_config({"max_seq_length": 512}, "/tmp/unused")
    with pytest.raises(RecipeKeyError, match=r"recipe\.lora: 'alpha' is not a peft\.LoraConfig field"):
        lora_config({"r": 8, "alpha": 16})


def test_qlora_is_nf4_double_quant_bf16_and_lora_defaults_to_all_linear():
    import torch

    from training.sft.config import lora_config, quantization_config

    q = quantization_config("qlora")
    assert (q.load_in_4bit, q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant, q.bnb_4bit_compute_dtype) == (
        True, "nf4", True, torch.bfloat16)
    assert quantization_config("lora") is None
    assert lora_config({"r": 4}).target_modules == "all-linear"
    assert lora_config({"r": 4, "target_modules": ["q_proj"]}).target_modules == {"q_proj"}
