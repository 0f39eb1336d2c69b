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

from serving.context.articles import Article, KnowledgeError, KnowledgeSettings, Passage, load_articles

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


SYNONYMS_FILE = "synonyms.txt"
"""Optional file in a knowledge folder: how customers say what its articles say (`read_synonyms`)."""


class Synonyms:
    """Rules `customer words, other customer words => article words`, one per line (`#` starts a comment):
    in a question, each left-hand word or phrase is read as the right-hand words, so "send it back" finds the
    article that says "return" (and no longer the ones that say "send" or "back"). Word boundaries, case-insensitive,
    applied in file order."""

    def __init__(self, rules: Sequence[tuple[tuple[str, ...], tuple[str, ...]]] = ()):
        self.rules = tuple((re.compile(r"\b(?:" + "|".join(map(re.escape, said)) + r")\b"), words)
                           for said, words in rules)

    def expand(self, question: str) -> str:
        """`question` with each customer word or phrase of a rule replaced by the rule's article words."""
        text = question.lower()
        for pattern, words in self.rules:
            text = pattern.sub(" ".join(words), text)
        return text


def read_synonyms(folder: Path) -> Synonyms:
    """The folder's `synonyms.txt` rules (none when there is no such file); raises `KnowledgeError` naming the
    file and line of a rule that is not `words => words`."""
    path = Path(folder) / SYNONYMS_FILE
    if not path.is_file():
        return Synonyms()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise KnowledgeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rules = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        said, arrow, meant = line.partition("=>")
        phrases = tuple(p.strip().lower() for p in said.split(",") if p.strip())
        words = tuple(re.findall(r"\w+", meant.lower()))
        if not arrow or not phrases or not words:
            raise KnowledgeError(f"{path}:{number}: a rule reads 'customer words, ... => article words', "
                                 f"not {line!r}")
        rules.append((phrases, words))
    return Synonyms(rules)


def match_query(question: str) -> str | None:
    """An FTS5 query matching any content word of `question` (each a quoted literal); None if it has none."""
    words = [w for w in re.findall(r"\w+", question.lower()) if w not in STOPWORDS and not w.startswith("_")]
    terms = list(dict.fromkeys(words))[:_MAX_TERMS]
    return " OR ".join(f'"{t}"' for t in terms) or None


class Knowledge:
    """A knowledge folder's passages and their BM25 index; safe to share between threads."""

    def __init__(self, articles: Sequence[Article], max_passages: int = 4, synonyms: Synonyms = Synonyms()):
        self.articles = tuple(articles)
        self.synonyms = synonyms
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
        return cls(load_articles(folder, settings), settings.max_passages, read_synonyms(folder))

    def whole_text(self) -> str:
        """Every passage, in article order: what is sent when it all fits."""
        return passages_text(self.passages)

    def rank(self, question: str) -> list[Passage]:
        """Passages sharing a content word with `question`, best BM25 score first."""
        query = match_query(self.synonyms.expand(question))
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
