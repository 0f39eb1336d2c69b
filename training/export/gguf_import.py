"""`python -m training import-gguf MODEL.gguf HF_DIR`: a GGUF -> a normal Hugging Face folder, so any Llama GGUF
can be a training base.

Weights come from transformers' own GGUF loader (it dequantizes every tensor and undoes llama.cpp's q/k
layout) and are saved as float32 safetensors by default: a dequantized Q4/Q8 weight is `scale * q + min`
computed in float32, which bfloat16 would round a second time, and CPU LoRA training computes in float32
anyway. The tokenizer is NOT taken from transformers: its GGUF converter gives every `gpt2` vocabulary
GPT-2's pre-tokenizer, while llama.cpp splits by `tokenizer.ggml.pre` (SmolLM2's `smollm` splits digits
one by one first). It is rebuilt here from the GGUF's tokens, merges, token types and special ids with the
pre-tokenizer of the family `training.families` registers for that name; unknown names are refused.
The folder is written under a temporary name and renamed when complete; `import.json` records the source.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import gguf
import numpy as np

from serving.files import sha256_of, temp_sibling
from training.export.convert import ExportError, RopeSpec, llama3_rope_factors
from training.families import Family, FamilyError, by_gguf_pre

DTYPES = ("float32", "bfloat16")
_SPECIAL_TYPES = (gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN)


class GGUFImportError(ExportError):
    """A GGUF the importer cannot turn into a Hugging Face folder; the message names what."""


def read_fields(path: Path) -> dict:
    """Every GGUF metadata key -> its value (strings and arrays decoded)."""
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError, IndexError, KeyError) as exc:  # gguf's reader fails on truncated files this way
        raise GGUFImportError(f"{path} is not a readable GGUF file: {exc!r}") from None
    return {name: field.contents() for name, field in reader.fields.items()}


def _special(fields: dict, tokens: list[str], key: str) -> str | None:
    idx = fields.get(f"tokenizer.ggml.{key}_token_id")
    return tokens[idx] if idx is not None and 0 <= idx < len(tokens) else None


def _post_processor(bos: str | None, eos: str | None, tokens: list[str]):
    from tokenizers import processors

    ends = [t for t in (bos, eos) if t is not None]
    if not ends:
        return None
    head, tail = (f"{bos}:0 " if bos else ""), (f" {eos}:0" if eos else "")
    single = f"{head}$A:0{tail}"
    pair = f"{single} {head.replace(':0', ':1')}$B:1{tail.replace(':0', ':1')}"
    return processors.TemplateProcessing(single=single, pair=pair,
                                         special_tokens=[(t, tokens.index(t)) for t in dict.fromkeys(ends)])


def _family(fields: dict) -> Family:
    if fields.get("tokenizer.ggml.model") != "gpt2":
        raise GGUFImportError(f"tokenizer model {fields.get('tokenizer.ggml.model')!r} is not supported: "
                              "Iris imports byte-level BPE (gpt2) vocabularies only")
    try:
        return by_gguf_pre(fields.get("tokenizer.ggml.pre", "default"))
    except FamilyError as exc:
        raise GGUFImportError(str(exc)) from None


def _bpe(fields: dict, family: Family):
    """The `tokenizers` BPE with the family's pre-tokenizer and the GGUF's control/user-defined tokens added."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tokens, types = list(fields["tokenizer.ggml.tokens"]), list(fields["tokenizer.ggml.token_type"])
    vocab = {text: idx for idx, text in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise GGUFImportError("the GGUF vocabulary holds the same token text twice; a BPE vocabulary cannot")
    merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges", [])]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=family.ignore_merges, byte_fallback=False))
    tok.pre_tokenizer, tok.decoder = family.pre_tokenizer(), decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i, kind in enumerate(types) if kind in _SPECIAL_TYPES])
    tok.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                    for i, kind in enumerate(types) if kind == gguf.TokenType.USER_DEFINED])
    return tok


def tokenizer_from_gguf(fields: dict):
    """The transformers fast tokenizer the GGUF's vocabulary describes, with its special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    family = _family(fields)
    tok, tokens = _bpe(fields, family), list(fields["tokenizer.ggml.tokens"])
    bos, eos = _special(fields, tokens, "bos"), _special(fields, tokens, "eos")
    add_bos = bool(fields.get("tokenizer.ggml.add_bos_token", family.add_bos))
    post = _post_processor(bos if add_bos else None, eos if fields.get("tokenizer.ggml.add_eos_token") else None, tokens)
    if post is not None:
        tok.post_processor = post
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=_special(fields, tokens, "unknown"),
        pad_token=_special(fields, tokens, "padding"), chat_template=fields.get("tokenizer.chat_template"),
        model_max_length=int(fields.get(f"{fields['general.architecture']}.context_length", 2048)),
        clean_up_tokenization_spaces=False,
    )


def llama3_rope_parameters(gguf_path: Path, fields: dict) -> dict | None:
    """Llama 3.x rope scaling recovered from the GGUF's `rope_freqs.weight`, or None when it has none.

    The GGUF keeps only the per-frequency divisors; the published Llama 3.1/3.2 settings (low 1, high 4,
    original context 8192, factor = the largest divisor) are accepted when they reproduce them exactly.
    """
    tensor = next((t for t in gguf.GGUFReader(gguf_path).tensors if t.name == "rope_freqs.weight"), None)
    if tensor is None:
        return None
    found = np.asarray(tensor.data, dtype=np.float32)
    rope = RopeSpec(theta=float(fields["llama.rope.freq_base"]), kind="llama3", factor=float(found.max()),
                    low_freq_factor=1.0, high_freq_factor=4.0, original_context=8192)
    if not np.allclose(llama3_rope_factors(rope, 2 * found.size), found, rtol=1e-6):
        raise GGUFImportError("rope_freqs.weight is not Llama 3.1/3.2 llama3 rope scaling: cannot describe it in config.json")
    return {"rope_type": "llama3", "rope_theta": rope.theta, "factor": rope.factor,
            "low_freq_factor": rope.low_freq_factor, "high_freq_factor": rope.high_freq_factor,
            "original_max_position_embeddings": rope.original_context}


def _load_model(gguf_path: Path, dtype: str, rope: dict | None):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if rope is not None:  # transformers' GGUF loader drops rope_freqs: without this the model is wrong past 8k tokens
        config.rope_parameters = rope
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, config=config,
                                                 dtype=torch.float32)
    del model.config.quantization_config  # dequantized: the saved folder is a plain float model
    model.hf_quantizer = None
    model.config.architectures = [type(model).__name__]
    return model.to(getattr(torch, dtype))


def import_gguf(gguf_path: str | Path, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Write the Hugging Face folder `out_dir` (safetensors, config, tokenizer, chat template) for a Llama GGUF."""
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if dtype not in DTYPES:
        raise GGUFImportError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise GGUFImportError(f"{out_dir} exists and is not empty: pass a new folder")
    fields = read_fields(gguf_path)
    arch = fields.get("general.architecture")
    if arch != "llama":
        raise GGUFImportError(f"architecture {arch!r} is not supported: Iris imports llama GGUFs only")
    tokenizer = tokenizer_from_gguf(fields)  # refuses before the slow weight load
    tmp = temp_sibling(out_dir)
    try:
        _load_model(gguf_path, dtype, llama3_rope_parameters(gguf_path, fields)).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = {"source": str(gguf_path.resolve()), "sha256": sha256_of(gguf_path), "dtype": dtype,
                  "tokenizer_pre": fields.get("tokenizer.ggml.pre"), "file_type": fields.get("general.file_type"),
                  "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        (tmp / "import.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gguf", type=Path, help="source .gguf (Llama architecture, byte-level BPE vocabulary)")
    parser.add_argument("hf_dir", type=Path, help="new Hugging Face folder to write")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="safetensors dtype (default float32: exact dequantized weights, CPU training dtype)")


def main(args: argparse.Namespace) -> int:
    try:
        out = import_gguf(args.gguf, args.hf_dir, dtype=args.dtype)
    except ExportError as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {out} ({args.dtype} safetensors, tokenizer and chat template from {args.gguf.name})")
    return 0
