"""`python -m training random-model`: a randomly initialised model with a real model's exact shape.

Benchmarks need Llama-3.2-1B/3B-sized GGUFs, and speed does not depend on weight values, so this
builds one offline: a Hugging Face folder (bf16 safetensors, config, a synthetic Llama-3-style
tokenizer with exactly the real 128256 ids) plus its quantized GGUF via `training.export`.
The shapes are a table; nothing here trains a model.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.registry import QUANT_TYPES

LLAMA3_BPE_SIZE = 128000  # Llama 3's BPE ids; the 256 special tokens follow
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}


@dataclass(frozen=True)
class ModelShape:
    """The architecture numbers that differ between Llama 3.2 sizes (the rest is shared, see `llama_config`)."""

    n_layer: int
    hidden: int
    n_head: int
    n_head_kv: int
    ffn: int
    bpe_size: int = LLAMA3_BPE_SIZE
    """BPE ids before the 256 Llama 3 specials (the real models have 128000)."""


SHAPES: dict[str, ModelShape] = {
    "llama-3.2-1b": ModelShape(n_layer=16, hidden=2048, n_head=32, n_head_kv=8, ffn=8192),
    "llama-3.2-3b": ModelShape(n_layer=28, hidden=3072, n_head=24, n_head_kv=8, ffn=8192),
    # serving/assets/selfcheck-Q4_K_M.gguf: the smallest Llama whose Q4_K rows are multiples of 256, the
    # shape that reaches llama.cpp's AMX kernels (serving/selfcheck.py)
    "selfcheck": ModelShape(n_layer=1, hidden=256, n_head=4, n_head_kv=2, ffn=512, bpe_size=1024),
}


def llama_config(shape: ModelShape, vocab_size: int | None = None, max_positions: int = 131072):
    """A `LlamaConfig` with Llama 3.2's shared settings (tied embeddings, llama3 rope, theta 5e5, eps 1e-5)."""
    from transformers import LlamaConfig

    from training.tokenizer import llama3_special_tokens

    specials = llama3_special_tokens()
    vocab_size = vocab_size or shape.bpe_size + len(specials)
    first_special = vocab_size - len(specials)
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden, intermediate_size=shape.ffn,
        num_hidden_layers=shape.n_layer, num_attention_heads=shape.n_head, num_key_value_heads=shape.n_head_kv,
        head_dim=shape.hidden // shape.n_head, max_position_embeddings=max_positions, rms_norm_eps=1e-5,
        rope_theta=500000.0, rope_scaling=dict(LLAMA3_ROPE), tie_word_embeddings=True, hidden_act="silu",
        bos_token_id=first_special + specials.index("<|begin_of_text|>"),
        eos_token_id=first_special + specials.index("<|eot_id|>"),
        pad_token_id=first_special + specials.index("<|finetune_right_pad_id|>"),
        architectures=["LlamaForCausalLM"],
    )


# ---------------------------------------------------------------- tokenizer

_WORDS = ("order refund shipping payment account password delivery invoice support ticket question answer "
          "learn study model token llama cpu memory python function value number table chart the a of and to "
          "in is that for it with as was on be at by this have from or one had not but what all were when we "
          "there can an your which their said if do will each about how up out them then she many some so").split()


def synthetic_corpus(seed: int, n_lines: int = 3000) -> list[str]:
    """Deterministic mixed text (words, numbers, code, unicode, whitespace) to train the base BPE on."""
    rng = random.Random(seed)
    extras = ["café", "naïve", "Grüße", "日本語", "😀", "👍🏽", "→", "def f(x):\n    return x * 2", "\t", "  ", "\n\n"]
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(_WORDS).capitalize() if rng.random() < 0.1 else rng.choice(_WORDS) for _ in range(12)]
        words.insert(rng.randrange(12), str(rng.randrange(100000)))
        words.insert(rng.randrange(12), rng.choice(extras))
        lines.append(" ".join(words) + rng.choice([".", "?", "!", ":"]))
    return lines


def pad_bpe(vocab: dict[str, int], merges: list[tuple[str, str]], size: int) -> tuple[dict, list]:
    """Grow a BPE to `size` ids with real merges of existing tokens (a + b for the earliest ids first).

    Every added token is reachable through its merge, so HF and llama.cpp tokenize identically and
    the vocabulary is a genuine BPE, just with low-priority merges nobody's text is likely to hit.
    """
    vocab, merges = dict(vocab), list(merges)
    by_id = sorted(vocab, key=vocab.get)
    base = by_id[: max(512, int((size - len(vocab)) ** 0.5) + 2)]
    for left in base:
        for right in base:
            if len(vocab) >= size:
                return vocab, merges
            if left + right not in vocab:
                vocab[left + right] = len(vocab)
                merges.append((left, right))
    raise ValueError(f"could not pad the BPE to {size} tokens")


def synthetic_llama3_tokenizer(seed: int, bpe_size: int = LLAMA3_BPE_SIZE, model_max_length: int = 131072):
    """A Llama-3-style fast tokenizer with exactly `bpe_size` BPE ids + the 256 Llama 3 specials."""
    from tokenizers import Tokenizer

    from training.tokenizer import add_llama3_specials, to_hf, train_bpe

    trained = json.loads(train_bpe(synthetic_corpus(seed), vocab_size=min(8192, bpe_size)).to_str())
    model = trained["model"]
    vocab = model["vocab"]  # BPE ids only: the specials live in added_tokens and are re-added after padding
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    model["vocab"], padded_merges = pad_bpe(vocab, merges, bpe_size)
    model["merges"] = [list(m) for m in padded_merges]
    trained["added_tokens"], trained["post_processor"] = [], None
    return to_hf(add_llama3_specials(Tokenizer.from_str(json.dumps(trained))), model_max_length)


# ---------------------------------------------------------------- model


def save_random_llama(config, tokenizer, out_dir: Path, seed: int, dtype: str = "bfloat16") -> Path:
    """Initialise `LlamaForCausalLM(config)` from `seed` in `dtype` on CPU and save it with `tokenizer`."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM._from_config(config, dtype=getattr(torch, dtype))
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del model
    return out_dir


def build_random_model(like: str, out: Path, seed: int = 0, quant: str = "Q4_K_M") -> dict:
    """Create `out/hf/` and `out/<like>-random-<quant>.gguf`; return a summary (sizes, seconds)."""
    from training.export import export_gguf

    if like not in SHAPES:
        raise ValueError(f"unknown --like {like!r}; expected one of {', '.join(SHAPES)}")
    started = time.perf_counter()
    shape = SHAPES[like]
    hf_dir = save_random_llama(llama_config(shape), synthetic_llama3_tokenizer(seed, shape.bpe_size), out / "hf", seed)
    saved = time.perf_counter()
    result = export_gguf(hf_dir, out / f"{like}-random-{quant}.gguf", quant=quant, name=f"{like}-random",
                         finetune="random-init", license="llama3.2")
    done = time.perf_counter()
    return {"like": like, "shape": asdict(SHAPES[like]), "seed": seed, "quant": quant, "gguf": str(result.path),
            "gguf_bytes": result.size_bytes, "sha256": result.sha256, "init_and_save_s": round(saved - started, 1),
            "export_s": round(done - saved, 1), "total_s": round(done - started, 1)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--like", required=True, choices=sorted(SHAPES), help="real model whose shape to copy")
    parser.add_argument("--out", required=True, type=Path, help="output folder (gets hf/ and the GGUF)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and the synthetic tokenizer")
    parser.add_argument("--quant", default="Q4_K_M", choices=QUANT_TYPES, help="GGUF quant type (default Q4_K_M)")


def main(args: argparse.Namespace) -> int:
    summary = build_random_model(args.like, args.out, args.seed, args.quant)
    print(json.dumps(summary, indent=2))
    return 0
