"""The specific facts a text states, compared by meaning: order ids, dates, prices, percentages, times of day,
durations and other numbers or codes ("$99" = "$99.00", "3-5 days" = "3 to 5 business days" end by end).

Shared by the answer check a visitor sees (`serving.context.check`) and the support task metric
(`training.stages.task_metric`), so both count the same things the same way. Pure functions of text.
"""

from __future__ import annotations

import re
from decimal import Decimal


def normal(text: str) -> str:
    """Lower case, one space for any run of white space, a dash for an en dash."""
    return re.sub(r"\s+", " ", text.lower().replace("\u2013", "-"))


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
LIST_NUMBER = re.compile(r"^[ \t]*\d{1,2}[.)](?=[ \t])", re.MULTILINE)
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
    text = LIST_NUMBER.sub(lambda m: " " * len(m.group(0)), text)
    text, found = normal(text).replace("’", "'"), []
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
