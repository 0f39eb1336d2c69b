"""LLM-as-judge for `eval`: both presentation orders are asked and averaged, so a judge that always
prefers one position scores two answers equally; a local GGUF judge answers under a JSON grammar."""

from __future__ import annotations

import json

from training.stages.judge import CRITERIA, gguf_judge, judge_pair


def first_position_judge(messages):
    """A judge with pure position bias: answer 1 always gets 5, answer 2 always gets 1."""
    return json.dumps({"answer_1": {c: 5 for c in CRITERIA}, "answer_2": {c: 1 for c in CRITERIA}})


def test_both_orders_cancel_position_bias():
    scores = judge_pair(first_position_judge, "q?", "base answer", "fine-tune answer")
    assert scores["orders_parsed"] == 2
    assert scores["base"] == scores["finetune"] == {c: 3 for c in CRITERIA}


def test_each_order_sees_the_answers_swapped():
    seen = []

    def recording_judge(messages):
        seen.append(messages[-1]["content"])
        return "not json"

    scores = judge_pair(recording_judge, "q?", "BASE", "TUNED")
    assert seen[0].index("BASE") < seen[0].index("TUNED") and seen[1].index("TUNED") < seen[1].index("BASE")
    assert scores == {"base": None, "finetune": None, "orders_parsed": 0}


def test_local_gguf_judge_returns_parseable_scores(demo_paths):
    ask = gguf_judge(str(demo_paths["demo-support"]), n_ctx=1024)
    scores = judge_pair(ask, "Where is my order?", "It ships tomorrow.", "Check the Orders page for tracking.")
    assert scores["orders_parsed"] == 2
    for who in ("base", "finetune"):
        assert set(scores[who]) == set(CRITERIA) and all(1 <= v <= 5 for v in scores[who].values())
