"""The support task metric: does an answer state the shop facts its held-out question needs, and does it
state nothing it was not given?

Each held-out support record (data/support/test.jsonl, written by `training.demo.datagen`, and the
hand-written data/support/heldout_handwritten.jsonl) carries `facts`: what its reference answer states
("30 days", "$4.99", "3 to 5", an order's carrier or delivery day) and, when the customer gave one, the
order id; and a `kind` (policy / order / unknown_order / uncovered). An answer states a fact when the
fact's text appears in it (ranges may be written "3-5"; an order id counts by its five digits, however
it is written; a price, date, time, percentage or duration however it is written: `claims`).
On top of fact recall (`score`), `grounding` counts what an answer must not do: state a number, price,
duration, date or order id that neither the question nor its context holds (`invented_facts`), give an
unknown order a status instead of saying it cannot be found (`says_not_found`), or answer a question the
help center does not cover instead of saying so (`says_not_covered`). Pure functions: no model, no files
(`task_metric` is handed the function that answers).
"""

from __future__ import annotations

import re
from decimal import Decimal
from collections.abc import Callable, Iterable
from typing import Any

_ORDER_RE = re.compile(r"^BL-(\d{5})$")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("\u2013", "-"))


def states(answer: str, fact: str) -> bool:
    """Whether `answer` states `fact` (a price, date, time, percentage or duration fact however it is written)."""
    order = _ORDER_RE.match(fact)
    if order:
        return re.search(rf"(?<!\d){order.group(1)}(?!\d)", answer) is not None
    text, normal = _normal(answer), _normal(fact)
    variants = {normal, normal.replace(" to ", "-"), normal.replace(" to ", " - ")}
    if any(v in text for v in variants):
        return True
    wanted = {claim for claim, _ in claims(fact)}
    return bool(wanted) and all(kind != "number" for kind, _ in wanted) and wanted <= {c for c, _ in claims(answer)}


def score(items: Iterable[tuple[str, list[str]]]) -> dict[str, float | int]:
    """Over (answer, facts) pairs with at least one fact: fact recall, share with every fact, order-id echo."""
    scored = [(answer, facts) for answer, facts in items if facts]
    hits = [[states(answer, f) for f in facts] for answer, facts in scored]
    orders = [states(answer, f) for answer, facts in scored for f in facts if _ORDER_RE.match(f)]
    n_facts = sum(len(h) for h in hits)
    return {"answers": len(scored), "facts": n_facts,
            "fact_recall": round(sum(map(sum, hits)) / n_facts, 4) if n_facts else 0.0,
            "all_facts": round(sum(all(h) for h in hits) / len(hits), 4) if hits else 0.0,
            "order_id_echo": round(sum(orders) / len(orders), 4) if orders else 0.0, "order_ids": len(orders)}


def task_metric(answer: Callable[[str, list[list[dict]]], list[str]], rows: list[dict],
                who: tuple[str, ...] = ("base", "finetune")) -> dict[str, Any] | None:
    """The models in `who` on held-out rows that carry `facts`: does each answer state them?

    `answer(model, questions)` returns one answer text per question (llama.cpp in `evaluate`,
    transformers in `experiment`)."""
    rows = [r for r in rows if r.get("facts") and r["messages"][-1]["role"] == "assistant"]
    if not rows:
        return None
    questions = [r["messages"][:-1] for r in rows]
    answers = {model: answer(model, questions) for model in who}
    metric = {model: score(zip(answers[model], (r["facts"] for r in rows))) for model in who}
    examples = [{"question": q[-1]["content"], "facts": r["facts"], **{model: answers[model][i] for model in who}}
                for i, (q, r) in enumerate(zip(questions, rows))]
    return {"metric": metric, "examples": examples}


# ---------------------------------------------------------------- invented facts

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_NUM = r"\d+|" + "|".join(_WORDS)
_MONTH = "|".join(_MONTHS)
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
# (kind, pattern): found in this order, each match removed before the next kind is looked for, so "3 June 2026"
# is one date and not a date plus the numbers 3 and 2026. Every kind but "number" compares by meaning.
_CLAIMS = (
    ("order", re.compile(r"(?<!\w)(?:#?bl[- ]?|#)(\d{5})(?!\d)")),
    ("date", re.compile(rf"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,? )?{_DAY} (?:of )?({_MONTH})"
                        r"(?:,? (\d{4}))?")),
    ("date_md", re.compile(rf"({_MONTH}) {_DAY}(?:,? (\d{{4}}))?")),
    ("date_iso", re.compile(r"(\d{4})-(\d{2})-(\d{2})")),
    ("money", re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?) (?:dollars|usd)\b")),
    ("percent", re.compile(r"(\d+(?:\.\d+)?)\s?(?:%|percent\b)")),
    ("time", re.compile(r"\b(\d{1,2})(?::(\d\d))?\s?([ap])\.?m\b")),
    ("duration", re.compile(rf"\b({_NUM})(?:\s?(?:to|-|–|or)\s?({_NUM}))?[\s-](?:business |working )?"
                            r"(second|minute|hour|day|week|month|year)s?\b")),
    ("number", re.compile(r"(?<![\w.])[a-z]*\d[\w.]*(?<!\.)")),
)
_LIST_NUMBER = re.compile(r"^[ \t]*\d{1,2}[.)](?=[ \t])", re.MULTILINE)
Claim = tuple[str, str]
"""(kind, value as compared): ("duration:day", "30"), ("money", "4.99"), ("date", "06-03"), ("number", "4k")."""


def _count(word: str) -> str:
    return str(_WORDS.index(word) + 1) if word in _WORDS else str(int(word))


def _normalised(kind: str, groups: tuple, written: str) -> list[Claim]:
    """The claims one match stands for (a range is a claim per end)."""
    if kind == "order":
        return [("order", groups[0])]
    if kind in ("date", "date_md", "date_iso"):
        day, month = ((groups[0], groups[1]) if kind == "date" else (groups[1], groups[0]) if kind == "date_md"
                      else (groups[2], _MONTHS[int(groups[1]) - 1] if 0 < int(groups[1]) <= 12 else None))
        return [("date", f"{_MONTHS.index(month) + 1:02d}-{int(day):02d}")] if month else [("number", written)]
    if kind == "money":
        return [("money", f"{Decimal((groups[0] or groups[1]).replace(',', '')):.2f}")]
    if kind == "percent":
        return [("percent", f"{Decimal(groups[0]):g}")]
    if kind == "time":
        hour = int(groups[0]) % 12 + (12 if groups[2] == "p" else 0)
        return [("time", f"{hour:02d}:{groups[1] or '00'}")]
    if kind == "duration":
        return [(f"duration:{groups[2]}", _count(n)) for n in groups[:2] if n]
    return [("number", written)]


def claims(text: str) -> list[tuple[Claim, str]]:
    """Every specific fact `text` states (order ids, dates, prices, percentages, times of day, durations, any
    other number or code such as a tracking number), each with the words that state it. The numbers of a
    numbered list ("1. ", "2) " at a line's start) are layout, not facts."""
    text = _LIST_NUMBER.sub(lambda m: " " * len(m.group(0)), text)
    text, found = _normal(text).replace("’", "'"), []
    for kind, pattern in _CLAIMS:
        for match in pattern.finditer(text):
            written = match.group(0).rstrip(".,")
            found += [(claim, written) for claim in _normalised(kind, match.groups(), written)]
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return found


def invented_facts(answer: str, given: str) -> list[str]:
    """The facts `answer` states that `given` (the question and the context the model was given: its system
    turn and the user turns) does not: each as the answer writes it, once.

    A fact is a `claims` item. It is given when `given` states the same claim (the same kind and value: "$99"
    = "$99.00", "3-5 days" = "3 to 5 business days" end by end, "June 3" = "Wednesday 3 June 2026"); a plain
    number or code (kind "number") is also given when it occurs in `given` as any claim's digits (a quantity
    "2 x" or a product's "14" in the question). Weekday names alone and counts written in words ("five wrong
    passwords") are not facts here."""
    have = claims(given)
    kinds = {claim for claim, _ in have}
    digits = {d for _, written in have for d in re.findall(r"\d+(?:\.\d+)?", written)}
    invented = [written for claim, written in claims(answer) if claim not in kinds
                and not (claim[0] == "number" and set(re.findall(r"\d+(?:\.\d+)?", claim[1])) <= digits)]
    return list(dict.fromkeys(invented))


# ---------------------------------------------------------------- unknown orders and uncovered questions

_NEG = r"(?:can ?not|can't|cant|could ?not|couldn't|couldnt|unable to|not able to|did not|didn't|do not|don't|dont|" \
       r"was not able to|wasn't able to|am not able to)"
_NOT_FOUND = re.compile("|".join((
    rf"\b{_NEG}\s+(?:seem to\s+)?(?:find|locate|see|track down|look up|match)\b(?! your order number)",
    r"\bno (?:such )?order\b(?! number)", r"\bno (?:record|trace|match)e?s? (?:of|for)\b",
    r"\b(?:is not|isn't|was not|wasn't) (?:in|on) (?:our|the) (?:system|records?|database)\b",
    r"\b(?:does not|doesn't|did not|didn't) (?:seem to )?(?:exist|match any)\b",
    r"\bnot (?:a )?(?:valid|known|existing) order\b", r"\b(?:was |is )?not found\b",
)))
_NOT_COVERED = re.compile("|".join((
    r"\b(?:help ?cent(?:er|re)|articles?|knowledge base|passages?)\b[^.]*?\b(?:does not|doesn't|do not|don't|"
    r"did not|didn't)\s+(?:seem to\s+)?(?:cover|mention|say|include|have|contain)",
    r"\bnot (?:something )?(?:that )?(?:our |the )?(?:help ?cent(?:er|re)|articles?) (?:covers?|mentions?)",
    r"\b(?:do not|don't|does not|doesn't|have no|has no) (?:have )?(?:any )?(?:information|details|info)\b",
    r"\bno information\b", r"\b(?:not|isn't|is not) covered\b", r"\bi (?:do not|don't) know\b",
    r"\b(?:can't|cannot|can not) (?:answer|help with) that\b",
)))
_HANDOVER = re.compile("|".join((
    r"\bhuman (?:agent|colleague|support|being)\b", r"\bhand(?:ing)? (?:you |this |the chat |it )?over\b",
    r"\bhandover\b", r"\btransfer (?:you|the chat)\b",
    r"\bconnect you (?:with|to) (?:a |an |our )?(?:agent|person|colleague|human|team member|support agent)",
    r"\b(?:speak|talk) (?:to|with) (?:a |an )?(?:agent|person|human)\b",
)))


def says_not_found(answer: str) -> bool:
    """Whether `answer` says the order cannot be found ("I can't find an order BL-12345", "there is no such
    order", "it is not in our system"); "find your order number in the email" is not that."""
    return _NOT_FOUND.search(_normal(answer).replace("’", "'")) is not None


def says_not_covered(answer: str, handover: bool = True) -> bool:
    """Whether `answer` says the help center does not cover the question (or, with `handover`, offers a human
    agent: a covered answer may also end "contact a human agent if it persists", so a refusal is without it)."""
    text = _normal(answer).replace("’", "'")
    return _NOT_COVERED.search(text) is not None or (handover and _HANDOVER.search(text) is not None)


def _share(hits: list[bool]) -> float:
    return round(sum(hits) / len(hits), 4) if hits else 0.0


def grounding(answers: list[str], rows: list[dict], givens: list[str]) -> dict[str, float | int]:
    """Over one cell's answers to `rows` (each with a `kind`) given `givens` (what each answer was given):
    invented facts, unknown orders said not found, uncovered questions said not covered, and covered questions
    refused."""
    invented = [invented_facts(a, g) for a, g in zip(answers, givens)]
    kinds = [r.get("kind", "policy") for r in rows]
    unknown = [says_not_found(a) for a, k in zip(answers, kinds) if k == "unknown_order"]
    uncovered = [says_not_covered(a) for a, k in zip(answers, kinds) if k == "uncovered"]
    refused = [says_not_found(a) or says_not_covered(a, handover=False) for a, k in zip(answers, kinds)
               if k in ("policy", "order")]
    return {"questions": len(answers), "invented_answers": _share([bool(i) for i in invented]),
            "invented_claims": sum(map(len, invented)), "claims": sum(len(claims(a)) for a in answers),
            "unknown_orders": len(unknown), "unknown_not_found": _share(unknown),
            "uncovered": len(uncovered), "uncovered_said": _share(uncovered),
            "covered": len(refused), "covered_refused": _share(refused)}


# ---------------------------------------------------------------- the layout a persona asks for

_PROS = re.compile(r"\b(?:pros?|advantages?|upsides?|benefits?)\b", re.IGNORECASE)
_CONS = re.compile(r"\b(?:cons?|disadvantages?|downsides?|drawbacks?)\b", re.IGNORECASE)
EXPERT_WORDS = 60
"""An expert's short version is at most this many words."""
# style name -> check of (answer, its numbered-list steps): a charge broken down in at least three numbered steps;
# pros and cons both named; numbered steps for a beginner; no list and at most `EXPERT_WORDS` words for an expert.
_STYLE_CHECKS: dict[str, Callable[[str, int], bool]] = {
    "breakdown": lambda answer, steps: steps >= 3,
    "pros_cons": lambda answer, steps: bool(_PROS.search(answer) and _CONS.search(answer)),
    "novice": lambda answer, steps: steps >= 1,
    "expert": lambda answer, steps: steps == 0 and len(answer.split()) <= EXPERT_WORDS,
}
STYLES = tuple(_STYLE_CHECKS)
"""The layouts a persona asks for (`Case.style`, the breakdown order answer, the expertise levels in `datagen`)."""


def follows_style(answer: str, style: str) -> bool:
    """Whether `answer` is laid out as its persona asks (`style`, a held-out row's; `_STYLE_CHECKS`)."""
    if style not in _STYLE_CHECKS:
        raise ValueError(f"unknown answer style {style!r}; known: {', '.join(STYLES)}")
    return _STYLE_CHECKS[style](answer, len(_LIST_NUMBER.findall(answer)))


def style_score(answers: list[str], rows: list[dict]) -> dict[str, float | int]:
    """Over the rows that name a `style`: how many, and the share of answers laid out that way."""
    hits = [follows_style(a, r["style"]) for a, r in zip(answers, rows) if r.get("style")]
    return {"styled": len(hits), "style_followed": _share(hits)}


def cell_score(answers: list[str], rows: list[dict], givens: list[str]) -> dict[str, float | int]:
    """One cell (a model, with or without context) on held-out `rows`: `score` (fact recall over rows with facts),
    `grounding` and `style_score`."""
    return {**score(zip(answers, (r.get("facts") or [] for r in rows))), **grounding(answers, rows, givens),
            **style_score(answers, rows)}
