"""Llama-3-style tokenizers built with `tokenizers`: byte-level BPE, Llama 3 pre-tokenizer
regex, Llama 3.x special tokens (same names and order) and the Llama 3.2 chat template.

Used for the offline demo models and for synthetic benchmark models, so they travel
exactly the path a real Llama 3.2 tokenizer takes (HF -> GGUF `llama-bpe` -> llama.cpp).
It builds tokenizers only; it does not train models.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from training.families import FAMILIES

LLAMA3 = FAMILIES["llama3-bpe"]
BOS, EOS_TEXT, EOT, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"
N_SPECIAL = 256  # Llama 3 reserves 256 ids for special tokens after the BPE vocabulary.


def llama3_special_tokens() -> list[str]:
    """The 256 Llama 3.1/3.2 special tokens in their id order (128000..128255 in the real model)."""
    head = [
        BOS, EOS_TEXT, "<|reserved_special_token_0|>", "<|reserved_special_token_1|>", PAD,
        "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eom_id|>", EOT, "<|python_tag|>",
    ]
    return head + [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + N_SPECIAL - len(head))]


def chat_template() -> str:
    """The Llama 3.2 instruct chat template (Jinja), as shipped in tokenizer_config.json."""
    return LLAMA3.chat_template_text()


def _blank_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=LLAMA3.ignore_merges, byte_fallback=False))
    tok.pre_tokenizer = LLAMA3.pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    return tok


def add_llama3_specials(tok: Tokenizer) -> Tokenizer:
    """Append the 256 Llama 3 special tokens and the BOS post-processor to a trained BPE."""
    tok.add_special_tokens(llama3_special_tokens())
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, bos_id)]
    )
    return tok


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a Llama-3-style byte-level BPE with `vocab_size` ids in all (specials included)."""
    if vocab_size <= N_SPECIAL + 256:
        raise ValueError(f"vocab_size must exceed {N_SPECIAL + 256} (256 bytes + {N_SPECIAL} specials)")
    tok = _blank_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - N_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return add_llama3_specials(tok)


def to_hf(tok: Tokenizer, model_max_length: int):
    """Wrap as a transformers fast tokenizer with Llama 3.2's bos/eos/pad and chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        chat_template=chat_template(),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def build_llama3_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int = 2048):
    """Train and wrap in one step; save it with `.save_pretrained(dir)`."""
    return to_hf(train_bpe(texts, vocab_size), model_max_length)
