"""Ranking passages for a question and choosing those that fit a token budget.

The index is SQLite FTS5 with its built-in BM25 (`bm25()`), in memory, one per knowledge folder. Why
FTS5: it ships with Python's standard library (no new dependency to pin or audit), stems English with
its `porter` tokenizer, and ranks hundreds of passages in well under a millisecond, which is all a help
center needs. Visitor text never reaches FTS5's query syntax: only its words are kept, each quoted as
a literal, so `"`, `*`, `OR` or `NEAR(` are plain words.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from serving.context.articles import Article, KnowledgeSettings, Passage, load_articles

CountTokens = Callable[[str], int]
"""Text -> its number of tokens (the model's tokenizer, or an estimate)."""
PASSAGE_SEPARATOR = "\n\n"
# Column weights of bm25(): a match in a section heading says most about what the section answers.
_WEIGHTS = (2.0, 4.0, 1.0)
_MAX_TERMS = 32
# Prose averages 3 to 5 characters a token, so a whole knowledge longer than this many characters per budget
# token is not counted, only ranked from (counting SmolLM2's 5,000-token help center takes ~30 ms). Were a
# tokenizer ever denser, the cost is retrieved passages instead of all of them, never a broken budget.
_MAX_CHARS_PER_TOKEN = 10
STOPWORDS = frozenset("""
a about after all am an and any are as at be been but by can could did do does doing for from get got had has
have hello hey hi how i if im in into is it its just me much my no not of on or our please pls so some than
thank thanks that the their them then there these they this to too u was we were what when where which who why
will with would yes you your
""".split())


def passages_text(passages: Sequence[Passage]) -> str:
    """Passages as they go into a prompt, in the given order."""
    return PASSAGE_SEPARATOR.join(p.render() for p in passages)


def match_query(question: str) -> str | None:
    """An FTS5 query matching any content word of `question` (each a quoted literal); None if it has none."""
    words = [w for w in re.findall(r"\w+", question.lower()) if w not in STOPWORDS and not w.startswith("_")]
    terms = list(dict.fromkeys(words))[:_MAX_TERMS]
    return " OR ".join(f'"{t}"' for t in terms) or None


class Knowledge:
    """A knowledge folder's passages and their BM25 index; safe to share between threads."""

    def __init__(self, articles: Sequence[Article], max_passages: int = 4):
        self.articles = tuple(articles)
        self.passages = tuple(p for a in self.articles for p in a.passages)
        self.max_passages = max_passages
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE passages USING fts5(title, heading, text, tokenize='porter unicode61')")
        self._db.executemany("INSERT INTO passages (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
                             [(i, p.title, _own_heading(p), p.text) for i, p in enumerate(self.passages)])

    @classmethod
    def load(cls, folder: Path, settings: KnowledgeSettings = KnowledgeSettings()) -> Knowledge:
        """Load, validate and index `folder` (raises `KnowledgeError` naming a bad file)."""
        return cls(load_articles(folder, settings), settings.max_passages)

    def whole_text(self) -> str:
        """Every passage, in article order: what is sent when it all fits."""
        return passages_text(self.passages)

    def rank(self, question: str) -> list[Passage]:
        """Passages sharing a content word with `question`, best BM25 score first."""
        query = match_query(question)
        if query is None:
            return []
        with self._lock:
            rows = self._db.execute("SELECT rowid FROM passages WHERE passages MATCH ? "
                                    "ORDER BY bm25(passages, ?, ?, ?)", (query, *_WEIGHTS)).fetchall()
        return [self.passages[rowid] for (rowid,) in rows]

    def retrieve(self, question: str, budget_tokens: int, count_tokens: CountTokens) -> list[Passage]:
        """The whole knowledge if it fits `budget_tokens`; else the best-ranked passages (at most
        `max_passages`) whose `passages_text` fits it."""
        if budget_tokens <= 0:
            return []
        whole = self.whole_text()
        if len(whole) <= budget_tokens * _MAX_CHARS_PER_TOKEN and count_tokens(whole) <= budget_tokens:
            return list(self.passages)
        return _fit(self.rank(question), budget_tokens, count_tokens, self.max_passages)


def _own_heading(passage: Passage) -> str:
    """The heading to index: none for an article's intro, whose "heading" is its title (counted once)."""
    return "" if passage.heading == passage.title else passage.heading


def _fit(ranked: list[Passage], budget: int, count_tokens: CountTokens, most: int) -> list[Passage]:
    """Greedy in rank order: take each passage that still fits, then trim until the joined text fits
    (tokens of a join can differ from the sum of the parts by a token or two)."""
    picked, used = [], 0
    separator = count_tokens(PASSAGE_SEPARATOR)
    for passage in ranked:
        if len(picked) == most:
            break
        cost = count_tokens(passage.render()) + separator
        if used + cost <= budget:
            picked.append(passage)
            used += cost
    while picked and count_tokens(passages_text(picked)) > budget:
        picked.pop()
    return picked
