"""The support task metric: does an answer state the shop facts its held-out question needs?

Each held-out support record (data/support/test.jsonl, written by `training.demo.datagen`) carries
`facts`: the policy numbers of its reference answer ("30 days", "$4.99", "3 to 5") and, when the
customer gave one, the order id. An answer states a fact when the fact's text appears in it (ranges
may be written "3-5"; an order id counts by its five digits, however it is written). Pure functions:
no model, no files (`task_metric` is handed the function that answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

_ORDER_RE = re.compile(r"^BL-(\d{5})$")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("\u2013", "-"))


def states(answer: str, fact: str) -> bool:
    """Whether `answer` states `fact`."""
    order = _ORDER_RE.match(fact)
    if order:
        return re.search(rf"(?<!\d){order.group(1)}(?!\d)", answer) is not None
    text, fact = _normal(answer), _normal(fact)
    variants = {fact, fact.replace(" to ", "-"), fact.replace(" to ", " - ")}
    return any(v in text for v in variants)


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
