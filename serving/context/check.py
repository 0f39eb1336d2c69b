"""Which figures of a grounded answer its sources do not back: what a visitor is warned about under the answer.

A support answer is written from help-center passages and order records, and a small model still puts a price on
the wrong product or a date on the wrong event. This check reads the finished answer against the context it was
given. A figure (a `claims` item: price, date, duration, time of day, percentage, order id, a code such as a
tracking number; not a plain number of one or two digits, which is a count or a list's numbering) is **backed**
when the visitor's own messages state it, or when a line of the context states it (a passage sentence with its
section's words, a table row, one field of an order record: of the order the sentence or the question names) and
that line is one the words beside the figure point at. Among the lines stating a figure of the same kind, the
words of the figure's clause before it score each line (rare words of the context score more), else the words
after it; the figure is backed when a best-scoring line states it. When no word beside it matches any such line
("It comes in $25 or $50."), a line stating it that shares a word with the sentence, the one before it or the
question is enough. Otherwise the figure is listed as the answer writes it: no source states it, or the sources
state it for something else ("the Nova 4K monitor is $35.00" when $35.00 is the Halo ring light's price).

Measured on the held-out reference answers (benchmarks/bench_answer_check.py): no true answer flagged, every
made-up value and most values moved from elsewhere in the context caught. What it cannot see: a true sentence
about another topic than the question's, or a figure of the right words meaning something else. A warning for the
visitor, not a proof. Pure functions of text: no model, no Gradio.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from serving.context.claims import Claim, claims, normal
from serving.context.orders import order_ids_in

MAX_LISTED = 20
"""Most unbacked figures kept with one answer."""
_BEFORE, _AFTER = 6, 3  # content words before and after a figure that say what it is the figure of
_STOP = frozenset("""
a about after again all also am an and any are as at be been before being both but by can could did do does done
down each either every for from further get gets got had has have he her here him his how i if in into is it its
just me more most my no nor not now of off on once only or other our out over own per please same she should so
some such than that the their them then there these they this those through to too under until up very was we
were what when where which while who whom why will with would yes you your
order orders shop customer thanks thank hi hello brightline one two go
""".split())
# everyday words an answer uses for an order record's field names
_SAME = {"placed": "ordered", "arrive": "delivered", "arrives": "delivered", "arrived": "delivered",
         "arriving": "delivered", "arrival": "delivered", "subtotal": "total"}
_CLAUSE = re.compile(r"[,;()]|\b(?:and|so|but|while|whereas|then)\b")
_HEADING = re.compile(r"^\[([^\]]*)\] \(")  # a passage's "[Title > Section] (ref)" line
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ORDER_ID = re.compile(r"(?:\bbl[- ]?|#)(\d{5})\b", re.IGNORECASE)  # an order number as one word, for `_words`
_RECORD = re.compile(r"^Order (BL-\d{5}): ")


class AnswerCheck(BaseModel):
    """The figures of one answer and those its sources do not back."""

    model_config = ConfigDict(frozen=True)

    figures: int = Field(0, ge=0)
    """Figures the answer states (a count or list number of one or two digits is not one)."""
    unbacked: tuple[str, ...] = Field((), max_length=MAX_LISTED)
    """Figures as the answer writes them that neither the question nor a matching line of the sources states."""


def check_answer(answer: str, context: str, question: str = "") -> AnswerCheck:
    """`answer`'s figures checked against `context` (the system turn's context text) and `question` (the
    visitor's message): see the module doc."""
    lines, weight = _read(context)
    asked = figures_of(question)
    question_words = _words(question)
    figures, unbacked, before = 0, [], frozenset()
    for sentence in _sentences(answer):
        words = _words(sentence)
        named = _orders(sentence) or _orders(question)
        scoped = [line for line in lines if line.order is None or line.order in named]
        for claim, written, head, tail in _placed(sentence):
            figures += 1
            if claim in asked:
                continue
            own = _words(written)
            if not _backed(claim, scoped, (head - own, tail - own, (words | before | question_words) - own), weight):
                unbacked.append(written)
        before = words
    return AnswerCheck(figures=figures, unbacked=tuple(dict.fromkeys(unbacked))[:MAX_LISTED])


def relevance(answer: str, context: str, question: str) -> float:
    """How much the lines behind `answer`'s figures are about `question`: for each figure the answer states and the
    question does not, the best score of a context line stating it for the question's words (rare words of the
    context score more, as in `check_answer`), averaged over those figures; 0.0 for an answer without one. A price
    lifted from the right passage's wrong sentence scores low; one from the sentence the question asks about, high."""
    lines, weight = _read(context)
    asked = _words(question)
    stated = figures_of(answer) - figures_of(question)
    scores = [max((sum(weight[w] for w in asked & line.words) for line in lines if claim in line.figures), default=0.0)
              for claim in stated]
    return sum(scores) / len(scores) if scores else 0.0


class _Line(NamedTuple):
    figures: frozenset[Claim]
    words: frozenset[str]
    order: str | None


@functools.lru_cache(maxsize=8)
def _read(context: str) -> tuple[tuple[_Line, ...], dict[str, float]]:
    """The context's lines and their words' weights, read once per context: the drafts of one answer are each
    checked and scored against the same context (callers only read the result)."""
    lines = tuple(_Line(frozenset(figures_of(text)), _words(text), order) for text, order in _lines(context))
    return lines, _weights([line.words for line in lines])


def _backed(claim: Claim, lines: list[_Line] | tuple[_Line, ...], nearby: tuple[frozenset[str], ...], weight: dict[str, float]) -> bool:
    """Whether a line states `claim` and is a line the words by the figure point at: of the lines stating a figure of
    its kind (a date, a price...), the best-scoring ones (rare words score more; a field of the named order's record
    wins a tie with a policy sentence) for the words before it in its clause, else for those after it; when neither
    points at any, a line stating it that shares a word with the sentence around it (the one before it and the
    question included)."""
    kind = [line for line in lines if any(have[0] == claim[0] for have in line.figures)]
    *near, around = nearby
    for words in near:
        score = [sum(weight[w] for w in words & line.words) for line in kind]
        best = max(score, default=0.0)
        if best > 0:
            tied = [line for line, s in zip(kind, score) if s >= best - 1e-9]
            records = [line for line in tied if line.order is not None]  # an order's own record before a policy
            return any(claim in line.figures for line in records or tied)
    return any(claim in line.figures and around & line.words for line in kind)


def _weights(units: list[frozenset[str]]) -> dict[str, float]:
    """Inverse document frequency of each word over the context's lines (a word on every line weighs little)."""
    seen: dict[str, int] = {}
    for words in units:
        for word in words:
            seen[word] = seen.get(word, 0) + 1
    return {word: math.log((len(units) + 1) / n) for word, n in seen.items()}


def _placed(sentence: str) -> Iterator[tuple[Claim, str, frozenset[str], frozenset[str]]]:
    """Each figure of `sentence` with the content words of its clause before it (at most `_BEFORE`) and after it
    (at most `_AFTER`); a clause ends at a comma, a semicolon, a bracket, "and", "so"... or another figure."""
    text = normal(sentence).replace("’", "'")
    found = sorted((text.find(written), claim, written) for claim, written in _figures(sentence))
    for i, (at, claim, written) in enumerate(found):
        at = max(at, 0)
        start = at + len(written)
        after_previous = found[i - 1][0] + len(found[i - 1][2]) if i else 0
        begin = max([after_previous, *(m.end() for m in _CLAUSE.finditer(text, 0, at))])
        end = min([len(text), *(f for f, _, _ in found[i + 1:]), *(m.start() for m in _CLAUSE.finditer(text, start))])
        yield (claim, written, frozenset(_ordered_words(text[begin:at])[-_BEFORE:]),
               frozenset(_ordered_words(text[start:end])[:_AFTER]))


def figures_of(text: str) -> set[Claim]:
    """The figures `text` states, compared by meaning."""
    return {claim for claim, _ in _figures(text)}


def _figures(text: str) -> list[tuple[Claim, str]]:
    return [(claim, written) for claim, written in claims(text)
            if not (claim[0] == "number" and claim[1].isdigit() and len(claim[1]) <= 2)]


def _lines(context: str) -> Iterator[tuple[str, str | None]]:
    """The context's units: each sentence of a passage and each table row with the passage's title and section
    words (order None), each field of an order record with its order number: a record's date backs a sentence
    about that order, or a sentence naming no order when the question names that one."""
    heading = ""
    for line in context.splitlines():
        record = _RECORD.match(line)
        if record:
            order = record.group(1)
            yield from ((field, order) for field in line[record.end():].split(";"))
        elif heading_line := _HEADING.match(line):
            heading = heading_line.group(1)
        else:
            yield from ((f"{heading} {sentence}", None) for sentence in _SENTENCE_END.split(line))


def _orders(text: str) -> set[str]:
    """The order numbers `text` names, as order lookup reads them ("#12345", "bl 12345": "BL-12345")."""
    return set(order_ids_in(text))


def _sentences(answer: str) -> Iterator[str]:
    for line in answer.splitlines():
        yield from (s for s in _SENTENCE_END.split(line) if s.strip())


def _words(text: str) -> frozenset[str]:
    """Content words, crudely stemmed, with an order number as one word ("bl32206") however it is written."""
    return frozenset(_ordered_words(text))


def _ordered_words(text: str) -> list[str]:
    text = _ORDER_ID.sub(lambda m: f" bl{m.group(1)} ", text.lower())
    return [_stem(_SAME.get(w, w)) for w in re.findall(r"[a-z][a-z0-9]+", text) if w not in _STOP]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "y"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word
