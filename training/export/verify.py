"""Parity checks between a Hugging Face Llama folder and the GGUF files exported from it.

(a) tokenization: llama.cpp's tokenizer gives exactly the HF token ids on a mixed corpus;
(b) logits: the unquantized GGUF's logits match the HF model's (same argmax, small max difference);
(c) the quantized GGUF's top-1 agreement with the unquantized one (reported, not asserted);
(d) chat template: the prompt llama-cpp-python renders from the GGUF equals `apply_chat_template`.
Each check returns a plain dict so the report can go straight into `<out>.json`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from serving.config import TEMPLATE_DATE
from training.export.convert import ExportError

# Unicode, emoji, code, whitespace runs, numbers and special tokens: the places tokenizers disagree.
TOKENIZER_CORPUS: tuple[str, ...] = (
    "Hello world! How are you today?",
    "Where is my order #12345? It was due on 2024-07-26.",
    "café naïve Grüße — déjà vu, São Paulo, Ελληνικά, русский, 日本語のテキスト, 한국어, العربية",
    "Emoji: 😀👍🏽🚀 and family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "def add(a, b):\n    return a + b  # sum\n\nprint(add(1, 2))",
    "if (x != y) { return x->next; }\tconst s = `tpl ${v}`;",
    "spaces:  two,   three,    four;\ttab,\t\ttwo tabs\nnewline\n\nblank line\r\nwindows",
    "   leading spaces and trailing   ",
    "\n\n\n",
    "numbers 1 12 123 1234 12345 3.14159 -42 1,000,000 0x1F",
    "I'm sure they'll say we've done what's right, isn't it? DON'T SHOUT'S",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
    "text around <|eot_id|> a special token and <|reserved_special_token_3|> another",
    "",
    "\n\n3.14 and\n\n42\n\n1.",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "int main() {\n\tfor (int i = 0; i < 10; ++i) printf(\"%d\\n\", i);\n}",
    "Unicode numbers: ٣٤٥ ½ ²³ ①② Ⅻ 一二三 and non-breaking\u00a0space, ideographic\u3000space, zero\u200bwidth",
)


def _generated_corpus() -> tuple[str, ...]:
    """Digit runs and whitespace runs in many surroundings: where pre-tokenizers that agree on prose differ."""
    runs = [("1234567890" * 2)[:n] for n in range(1, 14)]
    before = ["", " ", "  ", "\n", "\n\n", "\t", "x", "$", "-", "v"]
    after = ["", ".", ".5", ",000", " ", "\n", "px", "%"]
    digits = [f"{b}{run}{after[i % len(after)]}" for i, run in enumerate(runs) for b in before]
    spaces = [form.format(ws * n) for ws in (" ", "\t", "\n", "\r\n", "\u00a0", "\u3000")
              for n in range(1, 6) for form in ("a{}b", "{}a", "a{}", "{}1")]
    return tuple(digits + spaces)


HARD_CORPUS: tuple[str, ...] = TOKENIZER_CORPUS + _generated_corpus()
LOGITS_PROMPTS: tuple[str, ...] = (
    "The customer asked about a refund for order 1042 and the agent replied",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Émile a écrit: « Bonjour ! » 😀 — 日本語",
    # Long enough (hundreds of tokens) that a wrong llama3 rope scaling shows in the logits.
    " ".join(f"Ticket {i}: the customer asked where order {1000 + i} is; the agent said it ships soon." for i in range(16)),
)
CONVERSATIONS: tuple[list[dict], ...] = (
    [{"role": "user", "content": "Where is my order?"}],
    [{"role": "system", "content": "You are a helpful support agent."},
     {"role": "user", "content": "I want a refund."},
     {"role": "assistant", "content": "Sure, what is the order number?"},
     {"role": "user", "content": "It is 1042. 😀"}],
    [{"role": "system", "content": "  Answer briefly.  "}, {"role": "user", "content": "Explain\ttabs\n\nand  spaces"}],
)
LOGITS_TOLERANCE = 0.05  # floor of the accepted max |HF - F16 GGUF| logit difference


def _llama(path: Path, **kwargs):
    from llama_cpp import GGML_TYPE_F32, Llama

    # F32 KV cache: the check measures the exported weights, not llama.cpp's default F16 cache rounding.
    return Llama(model_path=str(path), verbose=False, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32,
                 n_threads=max(1, os.cpu_count() or 1), **kwargs)


def _hf_tokenizer(hf_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_dir)


def special_texts(tokenizer, limit: int = 8) -> tuple[str, ...]:
    """Texts around the tokenizer's own special tokens (first `limit` and the last), glued and spaced."""
    specials = list(tokenizer.added_tokens_decoder.values())
    chosen = [t.content for t in specials[:limit] + specials[-1:]]
    return tuple(f"a{tok}b {tok} x{tok}\n\n{nxt}12" for tok, nxt in zip(chosen, chosen[1:] + chosen[:1]))


def check_tokenization(hf_dir: Path, gguf_path: Path, corpus: tuple[str, ...] = HARD_CORPUS) -> dict:
    """(a) llama.cpp ids == HF ids for every text (plus texts around the special tokens), with and without BOS."""
    hf = _hf_tokenizer(hf_dir)
    vocab = _llama(gguf_path, vocab_only=True)
    mismatches = []
    corpus = corpus + special_texts(hf)
    for text in corpus:
        for add_bos in (True, False):
            want = hf(text, add_special_tokens=add_bos)["input_ids"]
            got = vocab.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
            if got != want:
                mismatches.append({"text": text, "add_bos": add_bos, "hf": want, "llama_cpp": got})
    return {"passed": not mismatches, "texts": len(corpus), "mismatches": mismatches}


def _llama_lora(gguf_path: Path, lora_path: Path | None, **kwargs):
    """`_llama` with the LoRA GGUF `lora_path` (if any) applied at scale 1, or ExportError if llama.cpp refuses it.

    Through the low-level API: llama-cpp-python 0.3.36's `Llama(lora_path=...)` tests
    `llama_adapter_lora_init`'s result with `is None`, but ctypes hands back a NULL pointer object, not
    None, so an adapter llama.cpp refuses (wrong base, wrong shapes) is silently not applied there.
    The adapter is freed with the model (llama.h: "loaded adapters will be free when the associated
    model is deleted").
    """
    import ctypes

    import llama_cpp

    llm = _llama(gguf_path, **kwargs)
    if lora_path is None:
        return llm
    adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, str(lora_path).encode("utf-8"))
    if not adapter:  # NULL: llama_adapter_lora_init caught llama.cpp's exception and logged its reason
        raise ExportError(f"llama.cpp refused the LoRA adapter {lora_path} over {gguf_path} (wrong base model?)")
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
    if llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)) != 0:
        raise ExportError(f"llama.cpp could not apply the LoRA adapter {lora_path} to its context")
    return llm


def gguf_logits(gguf_path: Path, batch: list[list[int]], lora_path: Path | None = None) -> list[np.ndarray]:
    """llama.cpp logits at every position of each token list (n_tokens x n_vocab, float32), one model load.

    `lora_path`: a LoRA GGUF applied at scale 1 over the model (`_llama_lora`).
    """
    longest = max(64, *(len(ids) for ids in batch))
    llm = _llama_lora(gguf_path, lora_path, logits_all=True, n_ctx=longest, n_batch=longest)
    results = []
    for ids in batch:
        llm.reset()
        llm.eval(ids)
        results.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    return results


def gguf_greedy(gguf_path: Path, batch: list[list[int]], n_new: int, lora_path: Path | None = None) -> list[list[int]]:
    """The `n_new` argmax tokens llama.cpp appends to each token list (no sampler, no stop at EOS)."""
    longest = max(64, *(len(ids) + n_new for ids in batch))
    llm = _llama_lora(gguf_path, lora_path, logits_all=True, n_ctx=longest, n_batch=longest)  # scores need it
    results = []
    for ids in batch:
        llm.reset()
        llm.eval(ids)
        new: list[int] = []
        for _ in range(n_new):
            new.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            llm.eval(new[-1:])
        results.append(new)
    return results


def model_greedy(model, batch: list[list[int]], n_new: int) -> list[list[int]]:
    """The `n_new` argmax tokens a loaded transformers model appends to each token list, by the rule `gguf_greedy`
    uses (plain argmax, end-of-text included and not stopped at: `generate`'s `min_new_tokens` would mask it)."""
    import torch

    model.eval()
    results = []
    with torch.no_grad():
        for ids in batch:
            tokens = list(ids)
            for _ in range(n_new):
                tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
            results.append(tokens[len(ids):])
    return results


def hf_logits(hf_dir: Path, batch: list[list[int]]) -> list[np.ndarray]:
    """Float32 logits of the HF model for each token list."""
    import torch
    from transformers import AutoModelForCausalLM

    return model_logits(AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32), batch)


def model_logits(model, batch: list[list[int]]) -> list[np.ndarray]:
    """Float32 logits of a loaded transformers model for each token list."""
    import torch

    model.eval()
    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0].float().numpy() for ids in batch]


def _prompt_ids(hf_dir: Path, prompts: tuple[str, ...]) -> list[list[int]]:
    tok = _hf_tokenizer(hf_dir)
    return [tok(p)["input_ids"] for p in prompts]


def _flip_gaps(want: np.ndarray, got: np.ndarray) -> np.ndarray:
    """For each position where the argmax differs: how far below HF's top logit HF puts the GGUF's pick."""
    differs = np.flatnonzero(want.argmax(-1) != got.argmax(-1))
    rows = want[differs]
    return rows.max(-1) - rows[np.arange(len(differs)), got.argmax(-1)[differs]]


def check_logits(hf_dir: Path, gguf_path: Path, prompts: tuple[str, ...] = LOGITS_PROMPTS) -> dict:
    """(b) max |HF - GGUF| logit difference within 1% of the logits' spread; argmax flips reported.

    llama.cpp rounds activations to F16 for F16 weights, so a bit-exact match is impossible. An
    argmax flip then only happens where HF itself has a tie within 2 x max_abs_diff (`max_flip_gap`
    shows it); a conversion bug (layout, rope, norms) shows as a large difference instead.
    `argmax_equal` is the strict every-position comparison the tests assert on a tiny model.
    """
    batch = _prompt_ids(hf_dir, prompts)
    return compare_logits(hf_logits(hf_dir, batch), gguf_logits(gguf_path, batch))


def compare_logits(want: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """`check_logits`' verdict on reference (`want`) and llama.cpp (`got`) logits of the same token lists."""
    spread = float(max(np.ptp(w) for w in want))
    tolerance = max(LOGITS_TOLERANCE, 0.01 * spread)
    max_diff = max(float(np.abs(w - g).max()) for w, g in zip(want, got))
    gaps = np.concatenate([_flip_gaps(w, g) for w, g in zip(want, got)])
    return {"passed": max_diff <= tolerance, "positions": sum(len(w) for w in want),
            "argmax_equal": gaps.size == 0, "argmax_flips": int(gaps.size),
            "max_flip_gap": float(gaps.max()) if gaps.size else 0.0,
            "max_abs_diff": max_diff, "tolerance": tolerance, "logit_spread": spread}


def top1_agreement(hf_dir: Path, reference: Path, candidate: Path, prompts: tuple[str, ...] = LOGITS_PROMPTS) -> dict:
    """(c) fraction of positions where the quantized GGUF's argmax equals the unquantized one's."""
    batch = _prompt_ids(hf_dir, prompts)
    pairs = zip(gguf_logits(reference, batch), gguf_logits(candidate, batch))
    same = sum(int((ref.argmax(-1) == cand.argmax(-1)).sum()) for ref, cand in pairs)
    total = sum(len(ids) for ids in batch)
    return {"positions": total, "agreement": same / total}


def gguf_chat_formatter(gguf_path: Path):
    """The formatter llama-cpp-python builds from a GGUF's own template and bos/eos tokens."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    vocab = _llama(gguf_path, vocab_only=True)
    template = vocab.metadata.get("tokenizer.chat_template")
    if template is None:
        raise ValueError(f"{gguf_path} has no tokenizer.chat_template")
    text = vocab._model.token_get_text  # the same lookup llama_cpp.Llama uses for its chat handler
    return Jinja2ChatFormatter(template, eos_token=text(vocab.token_eos()), bos_token=text(vocab.token_bos()))


def check_chat_template(hf_dir: Path, gguf_path: Path, conversations: tuple[list[dict], ...] = CONVERSATIONS) -> dict:
    """(d) llama-cpp-python's rendered prompt == HF `apply_chat_template`, as text and as token ids.

    Each conversation is rendered with a fixed `date_string` and with none (both sides then call
    their own `strftime_now`, i.e. today's date). The ids are what llama-cpp-python feeds the model:
    the prompt tokenized with special tokens and no extra BOS (the template already has one).
    """
    hf = _hf_tokenizer(hf_dir)
    formatter = gguf_chat_formatter(gguf_path)
    vocab = _llama(gguf_path, vocab_only=True)
    mismatches, rendered = [], 0
    for messages in conversations:
        for dated in ({"date_string": TEMPLATE_DATE}, {}):
            want = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **dated)
            want_ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, **dated)["input_ids"]
            got = formatter(messages=messages, **dated).prompt
            got_ids = vocab.tokenize(got.encode("utf-8"), add_bos=False, special=True)
            rendered += 1
            if got != want or got_ids != want_ids:
                mismatches.append({"messages": messages, **dated, "hf": want, "llama_cpp": got,
                                   "ids_equal": got_ids == want_ids})
    return {"passed": not mismatches, "conversations": len(conversations), "renderings": rendered,
            "mismatches": mismatches}


def verify_export(hf_dir: Path, unquantized: Path, quantized: Path) -> dict:
    """Run all four checks; `passed` is (a) and (b) and (d); (c) is reported."""
    report = {
        "tokenization": check_tokenization(hf_dir, quantized),
        "logits": check_logits(hf_dir, unquantized),
        "top1_agreement": top1_agreement(hf_dir, unquantized, quantized),
        "chat_template": check_chat_template(hf_dir, quantized),
    }
    failed = [name for name in ("tokenization", "logits", "chat_template") if not report[name]["passed"]]
    report["passed"] = not failed
    report["summary"] = (
        f"tokenization {'ok' if 'tokenization' not in failed else 'MISMATCH'}, "
        f"logits max|diff| {report['logits']['max_abs_diff']:.4f} (tolerance {report['logits']['tolerance']:.3f}), "
        f"argmax flips {report['logits']['argmax_flips']}/{report['logits']['positions']}, "
        f"top-1 agreement {report['top1_agreement']['agreement']:.3f}, "
        f"chat template {'ok' if 'chat_template' not in failed else 'MISMATCH'}"
    )
    return report
