"""Exam data for the study stage: leaked meta-instructions are stripped from the questions (user turns) as well as
the answers, and a question made only of instructions keeps its first sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.registry import DatasetSpec
from training.data import prepare_source
from training.data.exam import QUESTION_NOTE, NOTE, strip_meta_question

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("question, expected, removed", [
    ("What is osmosis? Relate it to everyday life.", "What is osmosis?", 1),
    ("Keep it short.\nWhat is a cell?", "What is a cell?", 1),
    ("Give one example. Then say what a lever does.", "Then say what a lever does.", 1),
    ("Briefly explain osmosis.", "Briefly explain osmosis.", 0),  # the instruction is the question
    ("Briefly explain osmosis. Relate it to everyday life.", "Briefly explain osmosis.", 1),
    ("Compare apples: they are red. Which is sweeter?", "Compare apples: they are red. Which is sweeter?", 0),
    ("Exam prep: what is mitosis?", "Exam prep: what is mitosis?", 0),
])
def test_strip_meta_question(question, expected, removed):
    assert strip_meta_question(question) == (expected, removed)


def test_the_exam_adapter_cleans_user_and_assistant_turns_and_counts_them_apart(tmp_path):
    rows = [
        [("user", "What is osmosis? Relate it to everyday life."), ("assistant", "Water crosses a membrane.")],
        [("user", "Briefly explain mitosis."), ("assistant", "Briefly compare it with meiosis. One cell makes two.")],
        [("user", "In two sentences: what is a lever?\nKeep it short."), ("assistant", "A bar on a pivot.")],
    ]
    path = tmp_path / "exam.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": r, "content": c} for r, c in row]}) + "\n"
                            for row in rows))
    spec = DatasetSpec(format="exam_jsonl", path=str(path), test_size=0.0)
    split, report = prepare_source(spec, tmp_path, 1, lambda e: 1, None)
    questions = sorted(e["messages"][0]["content"] for e in split.train)
    assert questions == ["Briefly explain mitosis.", "What is osmosis?", "what is a lever?"]
    assert "One cell makes two." in [e["messages"][1]["content"] for e in split.train]
    assert report.notes[QUESTION_NOTE] == 3 and report.notes[NOTE] == 1
