"""What of the student's notes an answer may be, and whether a generated answer is stated in them: pure functions.

`statements` picks the notes' sentences that the study tools' schemas offer as answers (an enum, word for word).

A claim (a quiz question's correct option, a flashcard's back) is *supported* by a set of passages when one
passage alone holds every number of the claim and at least `MIN_WORD_SHARE` of its content words (lower case,
`retrieval.STOPWORDS` and one-letter words dropped, a trailing "s" ignored on both sides). A claim with no
content word or number is not supported (nothing checkable). Words, not meaning: a correct paraphrase in other
words counts as unsupported, so this under- rather than over-states how grounded the answers are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from serving.context.articles import Passage
from serving.context.retrieval import STOPWORDS
from serving.study.schemas import DEFAULT_LIMITS

MIN_WORD_SHARE = 0.75
"""Share of the claim's content words one passage must hold."""
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKUP = re.compile(r"^(?:#+|[-*+]|\d+[.)])\s+")
_STATEMENT = re.compile(r'[A-Za-z0-9(][ !#-\[\]-{}~]*')  # printable ASCII without '"', '\\' and '|'
MIN_STATEMENTS = 2
"""Fewer sentences than this in the notes: the tools fall back to free text."""


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


def sentences(text: str) -> list[str]:
    """The sentences of Markdown `text`: a paragraph's wrapped lines joined; a heading, a list item or a blank line
    starts a new block; heading and list markers dropped."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or _MARKUP.match(line):
            blocks.append([])
        if line:
            blocks[-1].append(_MARKUP.sub("", line))
        if line.startswith("#"):
            blocks.append([])
    joined = (" ".join(block) for block in blocks if block)
    return [sentence for block in joined for sentence in _SENTENCE_END.split(block) if sentence]


def statements(texts: Iterable[str], max_length: int = DEFAULT_LIMITS.long, limit: int = 48) -> tuple[str, ...]:
    """The sentences of `texts` that an answer may be: at least four words, at most `max_length` characters,
    printable ASCII with no quote, backslash or '|' (so the grammar's literal is the sentence itself, never an
    escape, and never spells a chat-template token); the first `limit`, each once."""
    found = (s for text in texts for s in sentences(text))
    kept = (s for s in found if len(s.split()) >= 4 and len(s) <= max_length and _STATEMENT.fullmatch(s))
    return tuple(dict.fromkeys(kept))[:limit]


def grounded_statements(passages: Sequence[Passage]) -> tuple[str, ...]:
    """The notes' sentences a quiz answer or flashcard back must be one of (`statements`); () without
    notes or with too few usable sentences, and the tools write free text."""
    found = statements(p.text for p in passages)
    return found if len(found) >= MIN_STATEMENTS else ()
