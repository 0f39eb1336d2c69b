"""Comparing greedy answers computed in different step shapes (batched vs alone, chunked vs whole, restored vs read).

llama.cpp's numbers depend on the shape of the step a token is computed in. Its CPU flash attention has three
kernels (ggml-cpu/ops.cpp `ggml_compute_forward_flash_attn_ext_f16`): one query row of one sequence over 512 or more
cached positions splits the KV across threads and reduces float partials; a step with a tile's worth of query rows
per sequence takes the tiled kernel (float accumulators); every other step accumulates V in FP16
(`ggml_vec_mad_f16`). A visitor's token decoded beside others' rows, or its prompt read in another chunk size, or
its prefix copied into other cells, so goes through other roundings, and where the model's two likeliest tokens
are all but tied the greedy choice may tip.

So a batched answer is not checked for equality with the answer alone but for being greedy: replayed through plain
llama.cpp on the true prompt, ranked as Iris's sampler ranks (the repetition penalty on the answer's last tokens),
every token of the answer must be within `TIE_GAP` logits of the most likely one. A wrong KV cache (another
visitor's conversation, a stale position) makes the model say what the true prompt does not support and is caught
at whichever token it shows, not only where the two answers first part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.backends.llamacpp import PENALTY_LAST_N
from serving.generation import GenerationSettings

TIE_GAP = 1.5
"""Logits below the most likely token that a token of a batched greedy answer may be (step-shape rounding). Measured
on SmolLM2-135M over the answers of four chaos runs (benchmarks/greedy_noise.py, RESULTS-greedy-noise.md): rounding
kept every token of 222 answers within 0.58 logits; the same answers replayed on another visitor's prompt were
3.4-6.4 logits off at the median (generic answers fit several questions, so a wrong cache is not always visible
in one answer)."""


@dataclass(frozen=True)
class Deficit:
    """The worst token of an answer replayed greedily: how far below the model's top logit, and where."""

    logits: float
    after: str
    """The answer's text before that token (its last 40 characters)."""
    token: str
    top: str
    """The token the model found most likely there."""


class TokenTexts:
    """A vocabulary's token texts, looked up by text (for the tokens that can continue a given byte string)."""

    def __init__(self, llm):
        self.text = [llm.detokenize([t]) for t in range(llm.n_vocab())]
        self.by_text: dict[bytes, list[int]] = {}
        for token, text in enumerate(self.text):
            if text:
                self.by_text.setdefault(text, []).append(token)
        self.longest = max(len(text) for text in self.by_text)

    def continuing(self, rest: bytes) -> list[int]:
        """Tokens whose text is a non-empty prefix of `rest`."""
        return [t for n in range(1, min(len(rest), self.longest) + 1) for t in self.by_text.get(rest[:n], ())]


def _plain(path: Path, n_ctx: int, lora_path: Path | None):
    import llama_cpp as ll
    from llama_cpp import Llama

    from serving.backends.batched import Lora

    llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=2, verbose=False)
    if lora_path is not None:
        pointer = ll.llama_adapter_lora_init(llm._model.model, str(lora_path).encode("utf-8"))
        assert pointer, f"llama.cpp refused {lora_path}"
        Lora("gap", pointer).apply(llm.ctx)
    return llm


def greedy_deficit(path: Path, prompt: list[int], answer: str, lora_path: Path | None = None,
                   repeat_penalty: float = 1.1, banned: frozenset[int] = frozenset(), budget: int = 400) -> Deficit:
    """Replay `answer` after `prompt` with plain llama.cpp (the LoRA GGUF `lora_path` applied, if any) and return
    its worst token's distance below the most likely token, as Iris's greedy sampler ranks them: after the
    repetition penalty on the answer's last `PENALTY_LAST_N` tokens, with the `banned` tokens (an `ignore_eos`
    answer's end tokens) never the most likely.

    Over the ways the answer's text splits into tokens the least bad one counts (a text can be "match"+"ing" or
    "matchin"+"g": only the first is what the model said): depth first, the likeliest token first, pruned by the
    best split found so far, at most `budget` token evaluations beyond the first split. The walk ends where no
    token continues the answer (a character cut by the token limit)."""
    import llama_cpp as ll
    import numpy as np

    llm = _plain(path, len(prompt) + 512, lora_path)
    pieces, target = TokenTexts(llm), answer.encode("utf-8")
    llm.eval(prompt)
    start, best, left = llm.n_tokens, [Deficit(float("inf"), "", "", "")], [len(target) + budget]
    no_top = np.array(sorted(banned), dtype=np.int64)

    def ranked(said: list[int]) -> np.ndarray:
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
        recent = np.unique(np.array(said[-PENALTY_LAST_N:], dtype=np.int64))
        if recent.size and repeat_penalty != 1.0:  # llama.cpp's penalties sampler, repeat part
            hit = logits[recent]
            logits[recent] = np.where(hit <= 0, hit * repeat_penalty, hit / repeat_penalty)
        logits[no_top] = -np.inf
        return logits

    def walk(done: int, said: list[int], worst: Deficit) -> None:
        logits = ranked(said)
        candidates = pieces.continuing(target[done:])
        if not candidates:
            best[0] = worst
            return
        top, depth = int(np.argmax(logits)), llm.n_tokens
        for token in sorted(candidates, key=lambda t: -logits[t]):
            gap = float(logits[top] - logits[token])
            if max(gap, worst.logits) >= best[0].logits or left[0] <= 0:
                return
            here = worst if gap <= worst.logits else Deficit(
                gap, target[:done].decode("utf-8", "replace")[-40:], pieces.text[token].decode("utf-8", "replace"),
                pieces.text[top].decode("utf-8", "replace"))
            llm.n_tokens = depth
            llm.eval([token])
            left[0] -= 1
            walk(done + len(pieces.text[token]), said + [token], here)

    walk(0, [], Deficit(0.0, "", "", ""))
    llm.n_tokens = start
    return best[0]


def same_or_near_tie(model, messages: list[dict], got: str, expected: str, tie_gap: float = TIE_GAP,
                     settings: GenerationSettings | None = None) -> str | None:
    """None when `got` equals `expected` or is greedy within `tie_gap` logits at every token on the true prompt
    (with the repetition penalty and `ignore_eos` of the `settings` it was sampled with: the defaults if None);
    else why not (for an assert)."""
    if got == expected:
        return None
    settings = settings or GenerationSettings(temperature=0.0)
    base = getattr(model, "base", None)  # an adapter over a loaded base (`AdaptedModel`): its path is the LoRA file
    worst = greedy_deficit(base.path if base else model.path, model.prompt_tokens(messages), got,
                           model.path if base else None, settings.repeat_penalty,
                           frozenset(model.stop_ids) if settings.ignore_eos else frozenset())
    if worst.logits <= tie_gap:
        return None
    return (f"not a greedy answer to this prompt: after {worst.after!r} it says {worst.token!r}, {worst.logits:.2f} "
            f"logits below {worst.top!r} (limit {tie_gap}): {got!r} vs alone {expected!r}")
