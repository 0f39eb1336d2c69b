"""demo-base: a tiny `LlamaForCausalLM` and its tokenizer, trained from scratch on the bundled text.

The architecture comes from the registry recipe (`architecture`: LlamaConfig keys, including
`vocab_size` for the tokenizer); the tokenizer is `training.tokenizer`'s Llama-3-style BPE, so
the result has Llama 3.2's special tokens and chat template. Saving writes a normal HF folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from training.demo import data, loop
from training.tokenizer import build_llama3_tokenizer


def tokenizer_texts(chat_files: list[Path], text_files: list[Path]) -> Iterator[str]:
    """Every message and paragraph, in file order (the BPE trainer sees a fixed sequence)."""
    for path in chat_files:
        for messages in data.read_chat_jsonl(path):
            yield from (m["content"] for m in messages)
    for path in text_files:
        yield from data.read_paragraphs(path)


def build_tokenizer(chat_files: list[Path], text_files: list[Path], vocab_size: int, max_length: int):
    return build_llama3_tokenizer(tokenizer_texts(chat_files, text_files), vocab_size, model_max_length=max_length)


def new_model(architecture: dict, tokenizer, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model; `architecture` holds LlamaConfig keys from the recipe."""
    vocab = architecture.get("vocab_size", len(tokenizer))
    if vocab != len(tokenizer):
        raise ValueError(f"architecture.vocab_size {vocab} differs from the tokenizer's {len(tokenizer)} ids")
    config = LlamaConfig(
        **{**architecture, "vocab_size": len(tokenizer)},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|end_of_text|>"), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def pretrain_blocks(tokenizer, chat_files: list[Path], text_files: list[Path], block: int) -> list[data.Example]:
    """Chats (full loss) and paragraphs, packed into `block`-token blocks."""
    examples = [data.chat_example(tokenizer, m, assistant_only=False)
                for path in chat_files for m in data.read_chat_jsonl(path)]
    examples += [data.text_example(tokenizer, p) for path in text_files for p in data.read_paragraphs(path)]
    return list(data.concat_blocks(examples, block))


def save(model: LlamaForCausalLM, tokenizer, out_dir: Path) -> None:
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
