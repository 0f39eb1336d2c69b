"""Comparing greedy answers computed in different step shapes (batched vs alone, chunked vs whole, restored vs read).

llama.cpp's numbers depend a little on the shape of the step a token is computed in: prompt chunks and other
visitors' rows go through different matrix kernels (measured on SmolLM2-135M, one visitor alone: 2 of 14 prompts
answer differently with prompt chunks of 8, 64 or 256 tokens; on an Intel host the tiny demo model's answers
differ between batched and alone). So two greedy answers to one prompt may part where the model's two most likely
tokens are all but tied. `same_or_near_tie` accepts a difference only there: a wrong KV cache (another visitor's
conversation, a stale position) changes answers where the model is sure, and is still caught.
"""

from __future__ import annotations

from pathlib import Path

TIE_GAP = 1.0
"""Logits between the two most likely tokens below which a step's shape may tip the greedy choice. Measured on
SmolLM2-135M, one visitor, only the prompt chunk changed (8 / 64 / 256 tokens): the answers parted at gaps of 0.85
and 0.15 logits."""


def first_divergence_gap(path: Path, prompt: list[int], a: str, b: str, lora_path: Path | None = None) -> float:
    """Greedy-decode `prompt` a token at a time with plain llama.cpp (the LoRA GGUF `lora_path` applied, if any);
    at the first token after which `a` and `b` no longer both continue the text, the gap between the two most
    likely tokens' logits (0.0: never parted)."""
    import llama_cpp as ll
    import numpy as np
    from llama_cpp import Llama

    from serving.backends.batched import Lora

    llm = Llama(model_path=str(path), n_ctx=len(prompt) + 512, n_threads=2, verbose=False)
    if lora_path is not None:
        pointer = ll.llama_adapter_lora_init(llm._model.model, str(lora_path).encode("utf-8"))
        assert pointer, f"llama.cpp refused {lora_path}"
        Lora("gap", pointer).apply(llm.ctx)
    llm.eval(prompt)
    text = b""
    for _ in range(512):
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        second, first = np.argsort(logits)[-2:]
        text += llm.detokenize([int(first)])
        if not (a.encode().startswith(text) and b.encode().startswith(text)):
            return float(logits[first] - logits[second])
        llm.eval([int(first)])
    return 0.0


def same_or_near_tie(model, messages: list[dict], got: str, expected: str, tie_gap: float = TIE_GAP) -> str | None:
    """None when `got` equals `expected` or parts from it only at a near-tie; else why not (for an assert)."""
    if got == expected:
        return None
    base = getattr(model, "base", None)  # an adapter over a loaded base (`AdaptedModel`): its path is the LoRA file
    gap = first_divergence_gap(base.path if base else model.path, model.prompt_tokens(messages), got, expected,
                               model.path if base else None)
    if gap <= tie_gap:
        return None
    return f"answers part where the model is sure (top-2 gap {gap:.2f} logits): {got!r} vs {expected!r}"
