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


def test_the_bundled_exam_set_is_its_generators_output_and_prepares_clean():
    from training.data.exam_gen import LEAKED_ANSWER, LEAKED_QUESTION, OUT, generate

    rows = generate()
    assert OUT.read_text(encoding="utf-8") == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert 300 <= len(rows) <= 400
    leaks = (*LEAKED_QUESTION, *LEAKED_ANSWER)
    leaked = [r for r in rows if any(text in m["content"] for m in r["messages"] for text in leaks)]
    assert len(leaked) > 30  # the cleaning has work to do
    spec = DatasetSpec(format="exam_jsonl", path="data/study/exam.jsonl", test_size=0.1)
    split, report = prepare_source(spec, ROOT, 42, lambda e: 1, None, strict=True)
    assert report.notes[QUESTION_NOTE] > 10 and report.notes[NOTE] > 10 and report.kept == len(rows)
    turns = [m["content"] for e in split.train + split.test for m in e["messages"]]
    assert not [(text, t) for text in leaks for t in turns if text in t]


def test_the_study_recipes_train_on_it_directly_and_after_a_general_stage(registry):
    from serving.resolve import Resolver

    direct, two_stage = registry.get("smollm2-135m-study"), registry.get("smollm2-135m-study-two-stage")
    general = registry.get("smollm2-135m-general-stage")
    assert two_stage.recipe.run_base == general.id == two_stage.base_model
    assert general.recipe.base_checkpoint == direct.recipe.base_checkpoint == "models/smollm2-135m-instruct-hf"
    assert two_stage.recipe.model_dump(exclude={"base_checkpoint"}) == direct.recipe.model_dump(exclude={"base_checkpoint"})
    assert direct.recipe.datasets[0].format == "exam_jsonl" and direct.recipe.eval_domain == "study"
    for entry in (general, direct, two_stage):  # built on demand, like the CPU support recipe: no page default
        assert entry.source.kind == "local" and entry.id not in registry.defaults.ids()
        if not registry.local_path(entry).exists():
            assert not Resolver(registry).availability(entry).available
