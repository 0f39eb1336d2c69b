"""demo-support: LoRA fine-tune of demo-base on the bundled support dialogues, then merge.

The LoRA settings are the recipe's `lora` keys passed straight to `peft.LoraConfig`
(`target_modules: all-linear` covers every projection); the loss is taken on assistant
tokens only when the recipe's `sft.assistant_only_loss` says so. Returns a plain merged
`LlamaForCausalLM`, ready for `save_pretrained` and GGUF export.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from training.demo import data, loop


def support_blocks(tokenizer, chat_files: list[Path], settings: loop.TrainSettings) -> list[data.Example]:
    examples = [data.chat_example(tokenizer, m, settings.assistant_only_loss)
                for path in chat_files for m in data.read_chat_jsonl(path)]
    # A dialogue cut to max_length may lose every reply token; a block without labels would give a NaN loss.
    examples = [e for e in examples if any(label != data.IGNORE for label in e.labels[:settings.max_length])]
    return data.pack(examples, settings.max_length, tokenizer.pad_token_id)


def lora_finetune(base: LlamaForCausalLM, lora: dict, blocks: list[data.Example], settings: loop.TrainSettings,
                  seed: int, on_step: Callable[[int, float], None] = lambda step, loss: None) -> tuple[LlamaForCausalLM, list[float]]:
    """Train LoRA adapters on `base` (modified in place) and return the merged model and step losses."""
    torch.manual_seed(seed)  # LoRA A matrices are initialised from torch's RNG
    peft_model = get_peft_model(base, LoraConfig(**lora))
    losses = loop.train(peft_model, blocks, settings, seed, on_step)
    return peft_model.merge_and_unload(), losses
