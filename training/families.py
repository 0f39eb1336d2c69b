"""Tokenizer/template families: the one table of what differs between the byte-level BPE tokenizers Iris handles.

A family is a GGUF pre-tokenizer name (`tokenizer.ggml.pre`, what llama.cpp splits text with), the
Hugging Face pre-tokenizer that splits text the same way, the token that closes every chat turn, and
the chat template with its training copy (`{% generation %}` markers for assistant-only loss). The
exporter writes `gguf_pre` for a folder whose pre-tokenizer matches; the importer rebuilds `pre_tokenizer`
for a GGUF whose `tokenizer.ggml.pre` names the family; the trainer picks the training template.
Adding a family is one `Family(...)` below plus its parity tests. This module knows no file formats
beyond the tokenizer.json pre-tokenizer it compares.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers

TRAINING_DIR = Path(__file__).resolve().parent
# Meta's Llama 3 pre-tokenizer split; llama.cpp knows it as the `llama-bpe` pre-tokenizer.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Keys of a tokenizer.json pre-tokenizer step that change how text splits (trim_offsets only moves offsets).
_SPLITTING_KEYS = {"Split": ("pattern", "behavior", "invert"), "Digits": ("individual_digits",),
                   "ByteLevel": ("add_prefix_space", "use_regex")}


class FamilyError(ValueError):
    """A tokenizer or GGUF that no registered family describes; the message names what and what is supported."""


@dataclass(frozen=True)
class Family:
    """One tokenizer/template family: how llama.cpp and Hugging Face split its text, and its chat templates."""

    name: str
    """Registry key, e.g. `llama3-bpe`."""
    gguf_pre: str
    """llama.cpp's pre-tokenizer name (`tokenizer.ggml.pre`)."""
    pre_tokenizer: Callable[[], pre_tokenizers.PreTokenizer]
    """Builds the Hugging Face pre-tokenizer that splits text as llama.cpp's `gguf_pre` does."""
    ignore_merges: bool
    """BPE takes a whole pre-token found in the vocabulary before merging (llama.cpp does so for llama-bpe only)."""
    add_bos: bool
    """llama.cpp's BOS default for this pre-tokenizer when a GGUF has no `tokenizer.ggml.add_bos_token`."""
    turn_end: str
    """Token that closes every chat turn: llama.cpp's end-of-turn (EOT) and the end of each masked assistant span."""
    chat_template: str
    """The model's chat template file, relative to training/."""
    training_template: str
    """Its copy with `{% generation %}` around assistant turns, relative to training/; must render identically."""
    pad_token: str | None = None
    """Padding token to set when a tokenizer has none (Meta's Llama 3 sets none)."""
    eom: str | None = None
    """End-of-message token (Llama 3.1+ tool calls), written as GGUF EOM when the vocabulary has it."""

    def chat_template_text(self) -> str:
        return (TRAINING_DIR / self.chat_template).read_text(encoding="utf-8")

    def training_template_text(self) -> str:
        return (TRAINING_DIR / self.training_template).read_text(encoding="utf-8")

    def signature(self) -> tuple:
        """What `pre_tokenizer_signature` gives for this family's own pre-tokenizer."""
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = self.pre_tokenizer()
        return pre_tokenizer_signature(json.loads(tok.to_str())["pre_tokenizer"])


def _llama3_pre() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def _smollm_pre() -> pre_tokenizers.PreTokenizer:
    # SmolLM2's tokenizer.json: every digit alone, then GPT-2's byte-level regex (llama.cpp: `\p{N}` + GPT-2 regex).
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def pre_tokenizer_signature(pre: dict | None) -> tuple:
    """The splitting behaviour of a tokenizer.json `pre_tokenizer` as a comparable tuple of steps."""
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    signature = []
    for step in steps:
        keys = _SPLITTING_KEYS.get(step.get("type"), sorted(k for k in step if k != "type"))
        signature.append((step.get("type"), *(json.dumps(step.get(k), sort_keys=True) for k in keys)))
    return tuple(signature)


def make_registry(*families: Family) -> dict[str, Family]:
    """Name -> family; refuses two families with one name or one GGUF pre-tokenizer."""
    table: dict[str, Family] = {}
    for family in families:
        clash = [f.name for f in table.values() if family.gguf_pre == f.gguf_pre or family.name == f.name]
        if clash:
            raise FamilyError(f"tokenizer family {family.name!r} duplicates {clash[0]!r} (name or GGUF pre-tokenizer)")
        table[family.name] = family
    return table


FAMILIES: dict[str, Family] = make_registry(
    Family(name="llama3-bpe", gguf_pre="llama-bpe", pre_tokenizer=_llama3_pre, ignore_merges=True, add_bos=True,
           turn_end="<|eot_id|>", eom="<|eom_id|>", pad_token="<|finetune_right_pad_id|>",
           chat_template="templates/llama3_chat_template.jinja",
           training_template="sft/llama3_training_template.jinja"),
    Family(name="smollm", gguf_pre="smollm", pre_tokenizer=_smollm_pre, ignore_merges=False, add_bos=False,
           turn_end="<|im_end|>", chat_template="templates/smollm2_chat_template.jinja",
           training_template="sft/chatml_training_template.jinja"),
)


def supported() -> str:
    """`llama3-bpe (llama-bpe), smollm (smollm)`: for error messages."""
    return ", ".join(f"{f.name} ({f.gguf_pre})" for f in FAMILIES.values())


def by_name(name: str) -> Family:
    if name not in FAMILIES:
        raise FamilyError(f"unknown tokenizer family {name!r}; known: {supported()}")
    return FAMILIES[name]


def by_gguf_pre(pre: str) -> Family:
    """The family of a GGUF's `tokenizer.ggml.pre`, or FamilyError naming it."""
    for family in FAMILIES.values():
        if family.gguf_pre == pre:
            return family
    raise FamilyError(f"GGUF pre-tokenizer {pre!r} is not supported: Iris handles {supported()}")


def by_pre_tokenizer(pre: dict | None) -> Family:
    """The family whose pre-tokenizer splits like a tokenizer.json `pre_tokenizer`, or FamilyError naming it."""
    signature = pre_tokenizer_signature(pre)
    for family in FAMILIES.values():
        if family.signature() == signature:
            return family
    steps = pre.get("pretokenizers", [pre]) if pre else []
    patterns = [s["pattern"].get("Regex", s["pattern"].get("String")) for s in steps if s.get("type") == "Split"]
    shown = patterns[0] if patterns else " + ".join(s[0] for s in signature) or "none"
    raise FamilyError(f"pre-tokenizer {shown!r} is not supported: Iris handles {supported()}")


def of_tokenizer(tokenizer) -> Family:
    """The family of a transformers fast tokenizer (by its backend's pre-tokenizer)."""
    return by_pre_tokenizer(json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer"))
