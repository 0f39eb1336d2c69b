"""The support task evaluation of the eval stage: held-out questions asked four ways, scored by task_metric.

Four cells: base and fine-tune, each without context (the persona's prompt alone as the system turn) and
with it (the request names its persona and the engine writes the system turn from the app's context
layer, exactly as for a visitor). Each held-out set (the generated test split, the hand-written set) is
reported apart, on at most `task_rows` questions per set and cell, picked across the question kinds in turn.
What each answer was given (for `invented_facts`) is its system turn and the user turns; with context, the
system turn is rebuilt from the sources the engine reports for that very answer (`given_text`).
Boundary: answers come from the `Engine` the eval stage passes in; this module loads no model itself.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.context.layer import question_of
from serving.context.render import format_context, system_text
from training.stages.task_metric import cell_score, states

WHO = ("base", "finetune")
CONTEXTS = ("no_context", "context")
LABELS = {"base": "base", "finetune": "fine-tune", "no_context": "without", "context": "with"}


@dataclass(frozen=True)
class TaskOptions:
    """How the task metric is run."""

    max_new_tokens: int
    """Answer length limit."""
    task_rows: int = 20
    """Questions per held-out set in each cell (0: all)."""
    handwritten: Path | None = None
    """The hand-written held-out set (JSONL rows with `messages`, `facts`, `kind`, `persona`), if any."""
    styles: Path | None = None
    """Hand-written questions that ask for a persona's layout (rows also carry `style`), if any."""


def pick(rows: list[dict], n: int) -> list[dict]:
    """At most `n` rows (all when `n` is 0), taken from each kind in turn so every kind is asked; file order
    within a kind."""
    kinds: dict[str, list[dict]] = {}
    for row in rows:
        kinds.setdefault(row.get("kind", "policy"), []).append(row)
    picked, queues = [], [list(q) for q in kinds.values()]
    while queues and (n == 0 or len(picked) < n):
        queues = [q for q in queues if q]
        for queue in queues:
            if queue and (n == 0 or len(picked) < n):
                picked.append(queue.pop(0))
    return picked


def persona_rows(rows: list[dict]) -> list[dict]:
    """The rows asked as a persona: they name one and end with the reference answer."""
    return [r for r in rows if r.get("persona") and r["messages"][-1]["role"] == "assistant"]


def task_sets(test_rows: list[dict], options: TaskOptions) -> dict[str, list[dict]]:
    """{set name: rows} of the held-out sets whose rows name a persona (none: the plain task metric applies)."""
    sets = {"generated": test_rows}
    for name, path in (("handwritten", options.handwritten), ("styles", options.styles)):
        if path is not None:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            sets[name] = [json.loads(line) for line in lines if line.strip()]
    usable = {name: persona_rows(rows) for name, rows in sets.items()}
    return {name: pick(rows, options.task_rows) for name, rows in usable.items() if rows}


def _turns(row: dict) -> list[dict]:
    """The conversation up to the reference answer, without any system turn (the cell decides that)."""
    return [m for m in row["messages"][:-1] if m["role"] != "system"]


def given_text(engine, row: dict, sources: list[str] | None) -> str:
    """What an answer to `row` was given, as one text: its system turn, then the user turns. `sources`: the refs
    the engine reported for the context it sent (its passages, in order, and its order records), rebuilt here
    with the same `format_context` (the order findings are looked up again for the same question); None: the
    persona prompt alone. (When passages matched but none fitted, the engine omits the "no article" line this
    writes; that line states no fact.)"""
    persona = engine.personas.get(row["persona"])
    asked = [m["content"] for m in _turns(row) if m["role"] == "user"]
    if sources is None:
        return "\n".join([persona.system_prompt, *asked])
    knowledge = engine.context.knowledge(persona)
    by_ref = {p.ref: p for p in knowledge.passages} if knowledge else {}
    passages = [by_ref[ref] for ref in sources if ref in by_ref] if knowledge else None
    context = format_context(passages, engine.context.find_orders(persona, question_of(asked)))
    return "\n".join([system_text(persona.system_prompt, context.text), *asked])


def _cell(engine, who: str, rows: list[dict], with_context: bool,
          max_new_tokens: int) -> tuple[list[str], dict, list[list[str]]]:
    """One cell's answer texts, its score and the sources of each answer's context."""
    from training.stages.answers import answer_all

    if with_context:
        answers = answer_all(engine, who, [_turns(r) for r in rows], max_new_tokens,
                             personas=[r["persona"] for r in rows])
    else:
        conversations = [[{"role": "system", "content": engine.personas.get(r["persona"]).system_prompt}, *_turns(r)]
                         for r in rows]
        answers = answer_all(engine, who, conversations, max_new_tokens)
    sources = [a["sources"] for a in answers]
    given = [given_text(engine, r, s if with_context else None) for r, s in zip(rows, sources)]
    texts = [a["text"] for a in answers]
    seconds = round(sum(a["seconds"] for a in answers), 1)
    warned = round(sum(bool(a["unbacked"]) for a in answers) / len(answers), 4) if answers else 0.0
    drafts = round(sum(a["drafts"] for a in answers) / len(answers), 2) if answers else 0.0
    return texts, {**cell_score(texts, rows, given), "warned": warned, "drafts": drafts, "seconds": seconds}, sources


def facts_in_context(engine, rows: list[dict], sources: list[list[str]]) -> float:
    """Share of the rows' facts that the context the engine sent states: what a model answering from its
    context alone can reach."""
    pairs = [(given_text(engine, r, s), f) for r, s in zip(rows, sources) for f in r.get("facts") or []]
    return round(sum(states(given, fact) for given, fact in pairs) / len(pairs), 4) if pairs else 0.0


def grounded_task(engine, sets: dict[str, list[dict]], max_new_tokens: int) -> dict[str, Any]:
    """Every set in the four cells: {"sets": {name: {rows, kinds, facts_in_context, cells, examples}}, "metric"}.
    "metric" repeats the generated set's with-context cells ({who: score}), the shape `task_metric` returns."""
    report = {}
    for name, rows in sets.items():
        texts, cells = {}, {}
        for who in WHO:
            for ctx in CONTEXTS:
                texts[who, ctx], metric, sources = _cell(engine, who, rows, ctx == "context", max_new_tokens)
                cells.setdefault(who, {})[ctx] = metric
        kinds = dict(Counter(row.get("kind", "policy") for row in rows))
        examples = [{"question": _turns(r)[-1]["content"], "kind": r.get("kind"), "facts": r.get("facts") or [],
                     **{f"{who}/{ctx}": texts[who, ctx][i] for who in WHO for ctx in CONTEXTS}}
                    for i, r in enumerate(rows)]
        report[name] = {"rows": len(rows), "kinds": kinds, "facts_in_context": facts_in_context(engine, rows, sources),
                        "cells": cells, "examples": examples}
    first = report.get("generated") or next(iter(report.values()))
    return {"sets": report, "metric": {who: first["cells"][who]["context"] for who in WHO}}


SUMMARY_KEYS = ("fact_recall", "all_facts", "invented_answers", "unknown_not_found", "uncovered_said",
                "covered_refused", "style_followed")


def task_summary(task: dict[str, Any]) -> dict[str, Any]:
    """The numbers the stage record (and the model card) keep: per set, model and context, `SUMMARY_KEYS`."""
    if "sets" not in task:
        return task["metric"]
    return {name: {who: {ctx: {k: s["cells"][who][ctx].get(k) for k in SUMMARY_KEYS} for ctx in CONTEXTS}
                   for who in WHO} for name, s in task["sets"].items()}


def md_cell(text: str) -> str:
    """`text` as one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def _styled(cell: dict[str, Any]) -> str:
    """The layout column: "n/a" for a set without layout questions (or a cell recorded before they existed)."""
    return f"{cell['style_followed']:.1%} of {cell['styled']}" if cell.get("styled") else "n/a"


def task_lines(task: dict[str, Any] | None) -> list[str]:
    """The report's task section: per held-out set, the four cells and three example answers."""
    if not task or "sets" not in task:
        return _plain_lines(task)
    lines = []
    for name, s in task["sets"].items():
        kinds = ", ".join(f"{n} {k}" for k, n in s["kinds"].items())
        lines += [f"Task metric, {name} held-out set: {s['rows']} questions ({kinds}); the context the serving "
                  f"layer builds states {s['facts_in_context']:.1%} of their facts.", "",
                  "| model | context | facts stated | every fact | answers with an invented fact | unknown order: "
                  "not found | uncovered: said so | covered question refused | laid out as the persona asks |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for who in WHO:
            for ctx in CONTEXTS:
                m = s["cells"][who][ctx]
                lines.append(f"| {LABELS[who]} | {LABELS[ctx]} | {m['fact_recall']:.1%} | {m['all_facts']:.1%} | "
                             f"{m['invented_answers']:.1%} | {m['unknown_not_found']:.1%} of {m['unknown_orders']} | "
                             f"{m['uncovered_said']:.1%} of {m['uncovered']} | {m['covered_refused']:.1%} of "
                             f"{m['covered']} | {_styled(m)} |")
        lines += ["", "| question | facts | " + " | ".join(f"{LABELS[w]} {LABELS[c]} context" for w in WHO
                                                       for c in CONTEXTS) + " |", "| --- " * 6 + "|"]
        lines += [f"| {md_cell(e['question'])} | {', '.join(e['facts'])} | " + " | ".join(
            md_cell(e[f"{w}/{c}"]) for w in WHO for c in CONTEXTS) + " |" for e in s["examples"][:3]]
        lines.append("")
    return lines


def _plain_lines(task: dict[str, Any] | None) -> list[str]:
    """The task-metric table and three example answers of rows asked as written."""
    if not task:
        return []
    m = task["metric"]
    lines = [f"Task metric on {m['base']['answers']} held-out questions in phrasings training never saw "
             f"({m['base']['facts']} shop facts, {m['base']['order_ids']} order ids):", "",
             "| | facts stated | answers with every fact | order id echoed |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {LABELS[who]} | {m[who]['fact_recall']:.1%} | {m[who]['all_facts']:.1%} | "
              f"{m[who]['order_id_echo']:.1%} |" for who in WHO]
    lines += ["", "| question | facts | base | fine-tune |", "| --- | --- | --- | --- |"]
    lines += [f"| {md_cell(e['question'])} | {', '.join(e['facts'])} | {md_cell(e['base'])} | "
              f"{md_cell(e['finetune'])} |" for e in task["examples"][:3]]
    return lines + [""]
