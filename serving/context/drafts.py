"""Drafts of one grounded answer and the one a visitor is shown: the answer the sources back best.

A small model given the right passage often answers from the wrong sentence of it (asked whether a gift card
expires, it gives the card's amounts) or puts a figure on the wrong thing. Its samples differ in which sentence
they use, so the engine can ask for several drafts of one answer at once (a persona's `drafts`; they share the
prompt's KV cache and decode in one batch) and show one: of the drafts not cut for running on (`draft_limit`) and
with the fewest figures `check_answer` finds unbacked, the one whose figures rest on the context lines most about
the question (`relevance`); a tie goes to the earliest draft (the first is decoded with the request's own
settings). A choice among what the model wrote, not a correction: a fact no draft states stays missing. Measured
in benchmarks/RESULTS-drafts.md. Pure functions of text: no model, no Gradio.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.context.check import AnswerCheck, relevance

DRAFT_TEMPERATURE = 0.7
"""The lowest temperature of the drafts after the first: below it, samples of a small model mostly repeat the first."""
MAX_DRAFTS = 8
"""Most drafts one answer may ask for (each takes a decoding slot while it is written)."""


def draft_limit(first_tokens: int) -> int:
    """Tokens a later draft may run to before it is cut and left out: twice the first draft's, and 32 more. The
    visitor waits for the longest draft; one rambling on past the first rarely holds what the first lacked."""
    return 2 * first_tokens + 32


def choose(drafts: Sequence[tuple[str, AnswerCheck | None]], context: str, question: str) -> int:
    """The index of the draft to show of `drafts` (text, its check against `context`): fewest unbacked figures,
    then the highest `relevance` to `question`, then the earliest."""
    if not drafts:
        raise ValueError("choose: no drafts")
    unbacked = [len(check.unbacked) if check else 0 for _, check in drafts]
    fewest = min(unbacked)
    best, best_score = 0, -1.0
    for i, (text, _) in enumerate(drafts):
        if unbacked[i] == fewest and (score := relevance(text, context, question)) > best_score:
            best, best_score = i, score
    return best
