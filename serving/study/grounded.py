"""Whether a generated answer is stated in the student's notes: a pure, checkable definition for the benchmark.

A claim (a quiz question's correct option, a flashcard's back) is *supported* by a set of passages when one
passage alone holds every number of the claim and at least `MIN_WORD_SHARE` of its content words (lower case,
`retrieval.STOPWORDS` and one-letter words dropped, a trailing "s" ignored on both sides). A claim with no
content word or number is not supported (nothing checkable). Words, not meaning: a correct paraphrase in other
words counts as unsupported, so this under- rather than over-states how grounded the answers are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from serving.context.articles import Passage
from serving.context.retrieval import STOPWORDS

MIN_WORD_SHARE = 0.75
"""Share of the claim's content words one passage must hold."""
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]{2,}")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> set[str]:
    """Lower-case content words of `text` (stopwords and one-letter words dropped, plural "s" removed)."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def numbers(text: str) -> set[str]:
    """Numbers written in `text`, thousands separators dropped ("17,000" -> "17000")."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def supported_by(claim: str, passage_text: str) -> bool:
    """Whether one passage holds all the claim's numbers and `MIN_WORD_SHARE` of its content words."""
    words, nums = content_words(claim), numbers(claim)
    if not words and not nums:
        return False
    if not nums <= numbers(passage_text):
        return False
    return not words or len(words & content_words(passage_text)) >= MIN_WORD_SHARE * len(words)


def supported(claim: str, passages: Sequence[Passage]) -> bool:
    """Whether some passage of `passages` supports `claim` (`supported_by`)."""
    return any(supported_by(claim, p.text) for p in passages)
