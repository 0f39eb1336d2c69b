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
from collections.abc import Callable, Iterable
from typing import Any

# what an answer states is read as the answer check a visitor sees reads it; `claims` and `invented_facts` are
# imported from here by the metric's callers as well
from serving.context.claims import LIST_NUMBER, claims, invented_facts, normal  # noqa: F401

_ORDER_RE = re.compile(r"^BL-(\d{5})$")


def states(answer: str, fact: str) -> bool:
    """Whether `answer` states `fact` (a price, date, time, percentage or duration fact however it is written)."""
    order = _ORDER_RE.match(fact)
    if order:
        return re.search(rf"(?<!\d){order.group(1)}(?!\d)", answer) is not None
    text, wanted_text = normal(answer), normal(fact)
    variants = {wanted_text, wanted_text.replace(" to ", "-"), wanted_text.replace(" to ", " - ")}
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
    return _NOT_FOUND.search(normal(answer).replace("’", "'")) is not None


def says_not_covered(answer: str, handover: bool = True) -> bool:
    """Whether `answer` says the help center does not cover the question (or, with `handover`, offers a human
    agent: a covered answer may also end "contact a human agent if it persists", so a refusal is without it)."""
    text = normal(answer).replace("’", "'")
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
    return _STYLE_CHECKS[style](answer, len(LIST_NUMBER.findall(answer)))


def style_score(answers: list[str], rows: list[dict]) -> dict[str, float | int]:
    """Over the rows that name a `style`: how many, and the share of answers laid out that way."""
    hits = [follows_style(a, r["style"]) for a, r in zip(answers, rows) if r.get("style")]
    return {"styled": len(hits), "style_followed": _share(hits)}


def cell_score(answers: list[str], rows: list[dict], givens: list[str]) -> dict[str, float | int]:
    """One cell (a model, with or without context) on held-out `rows`: `score` (fact recall over rows with facts),
    `grounding` and `style_score`."""
    return {**score(zip(answers, (r.get("facts") or [] for r in rows))), **grounding(answers, rows, givens),
            **style_score(answers, rows)}
