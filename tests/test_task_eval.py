"""The eval stage's four task-metric cells on the real demo GGUFs through llama.cpp: each held-out set is asked
without context (the persona prompt as the system turn) and with it (the engine writes the system turn from the
context layer), every kind of question is asked, and what each answer is scored against is the context the engine
sent for it. Nothing here reads what the tiny models say."""

from __future__ import annotations

import json

import pytest

from serving.context.layer import ContextLayer, ContextSettings
from serving.personas import PERSONAS_DIR, load_personas
from training.demo.datagen import REPO_ROOT
from training.demo.orders import ORDERS_CSV
from training.stages.answers import eval_engine
from training.stages.evaluate import render_markdown
from training.stages.task_eval import TaskOptions, given_text, grounded_task, task_sets, task_summary

DATA = REPO_ROOT / "data" / "support"
KINDS = {"policy", "order", "unknown_order", "uncovered"}


@pytest.fixture(scope="module")
def task(demo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    context = ContextLayer.from_personas(load_personas().personas.values(), PERSONAS_DIR,
                                         ContextSettings(orders_db=folder / "orders.sqlite", orders_csv=ORDERS_CSV))
    engine = eval_engine({"base": str(demo_paths["demo-base"]), "finetune": str(demo_paths["demo-support"])}, 1024,
                         folder, context)
    rows = [json.loads(line) for line in (DATA / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    sets = task_sets(rows, TaskOptions(6, task_rows=4, handwritten=DATA / "heldout_handwritten.jsonl"))
    try:
        yield engine, sets, grounded_task(engine, sets, 6)
    finally:
        engine.close()


def test_each_set_is_asked_every_kind_in_four_cells(task):
    _, sets, result = task
    assert set(result["sets"]) == {"generated", "handwritten"}
    for name, report in result["sets"].items():
        assert {r["kind"] for r in sets[name]} == KINDS and report["rows"] == 4
        for who in ("base", "finetune"):
            for ctx in ("no_context", "context"):
                cell = report["cells"][who][ctx]
                assert cell["questions"] == 4 and cell["unknown_orders"] == 1 and cell["uncovered"] == 1
        assert all(set(e) >= {"base/context", "finetune/no_context"} for e in report["examples"])
    assert result["metric"]["finetune"] == result["sets"]["generated"]["cells"]["finetune"]["context"]


def test_with_context_answers_are_scored_against_the_context_the_engine_sent(task):
    engine, sets, _ = task
    from training.stages.answers import answer_all

    rows = sets["handwritten"]
    turns = [[m for m in r["messages"][:-1]] for r in rows]
    answers = answer_all(engine, "finetune", turns, 2, personas=[r["persona"] for r in rows])
    for row, answer in zip(rows, answers):
        given = given_text(engine, row, answer["sources"])
        assert given.startswith(load_personas().get(row["persona"]).system_prompt + "\n\n")
        assert all(f"({ref})" in given or f"Order {ref}:" in given for ref in answer["sources"])
        if row["kind"] == "unknown_order":
            assert "No order found with id BL-" in given
        if row["kind"] == "order":
            assert any(ref.startswith("BL-") for ref in answer["sources"])
        assert given_text(engine, row, None) == "\n".join([load_personas().get(row["persona"]).system_prompt,
                                                          row["messages"][0]["content"]])


def test_the_report_and_the_stage_record_carry_the_cells(task):
    _, _, result = task
    report = {"model_id": "demo-support", "base": "demo-base", "domain": "support", "max_new_tokens": 6,
              "heldout_examples": 2, "heldout": {"base": {"loss": 1.0, "perplexity": 2.7},
                                                 "finetune": {"loss": 0.5, "perplexity": 1.6}},
              "task": result, "judge": None, "items": []}
    markdown = render_markdown(report)
    assert markdown.count("| fine-tune | with |") == 2 and markdown.count("| base | without |") == 2
    assert "Task metric, handwritten held-out set: 4 questions" in markdown
    summary = task_summary(result)
    assert set(summary) == {"generated", "handwritten"}
    assert set(summary["generated"]["base"]) == {"no_context", "context"}
