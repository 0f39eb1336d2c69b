"""The exam-style study set: question -> worked answer, generated from a small fact base (data/study/facts.yaml)
and from worked arithmetic problems made by code.

`python -m training.data.exam_gen` writes data/study/exam.jsonl (deterministic: same facts and seed, same bytes).
Per fact: an exam question, a four-option multiple-choice question with its letter, a true and a false statement,
a flashcard and a revision summary; each answer states the answer first, then why, as the study tools' answer keys
do. Some questions and answers carry a leaked meta-instruction ("Relate it to everyday life.") as the generated
exam data of the original did, so the exam_jsonl adapter's cleaning of both turns has real work to do.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FACTS = REPO / "data" / "study" / "facts.yaml"
OUT = REPO / "data" / "study" / "exam.jsonl"
SEED = 23
LETTERS = "ABCD"
LEAKED_QUESTION = ("Relate it to everyday life.", "Keep it short.", "Give one example.", "Answer in two sentences.")
LEAKED_ANSWER = ("Briefly explain the idea.", "Relate it to everyday life.")
LEAK_RATE = 0.15
"""Share of questions (and, apart, of answers) given a leaked meta-instruction."""

Row = dict[str, list[dict[str, str]]]


def chat(question: str, answer: str) -> Row:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def fact_rows(fact: dict, rng: random.Random) -> Iterator[Row]:
    """The six rows of one fact."""
    answer, why, topic = fact["answer"], fact["why"], fact["topic"]
    yield chat(f"Exam prep: {fact['question']}",
               f"Answer: {_cap(answer)}.\nWhy: {why}\nExam tip: do not confuse it with {fact['wrong'][0]}.")
    options = [answer, *fact["wrong"]]
    rng.shuffle(options)
    letter = LETTERS[options.index(answer)]
    listed = "\n".join(f"{LETTERS[i]}. {_cap(o)}" for i, o in enumerate(options))
    yield chat(f"Multiple choice: {fact['question']}\n{listed}",
               f"Answer: {letter}. {_cap(answer)}.\nWhy: {why}")
    yield chat(f"True or false: {why}", f"True.\nWhy: {why}")
    yield chat(f"True or false: {fact['false']}", f"False.\nWhy: {why}")
    yield chat(f"Make a flashcard about {topic}.", f"Front: {fact['question']}\nBack: {_cap(answer)}. {why}")
    yield chat(f"Summarise {topic} for revision.",
               f"{why}\nKey answer: {answer}.\nCommon mistake: {fact['false']} That is wrong.")


def worked_problems(rng: random.Random) -> Iterator[Row]:
    """Arithmetic with the working shown: speed, percentages, rectangle areas, means and one-step equations."""
    for _ in range(16):
        d, t = rng.randint(2, 30) * 10, rng.randint(2, 10)
        if d % t:
            d = d - d % t
        yield chat(f"Exam prep: a cyclist travels {d} m in {t} s. What is the average speed?",
                   f"Step 1: speed = distance / time.\nStep 2: {d} m / {t} s = {d // t} m/s.\nAnswer: {d // t} m/s.")
    for _ in range(16):
        p, n = rng.choice((10, 20, 25, 50, 5, 15)), rng.randint(2, 40) * 20
        yield chat(f"Exam prep: what is {p}% of {n}?",
                   f"Step 1: {p}% = {p}/100.\nStep 2: {n} x {p}/100 = {n * p // 100}.\nAnswer: {n * p // 100}.")
    for _ in range(16):
        w, h = rng.randint(2, 15), rng.randint(2, 15)
        yield chat(f"Exam prep: a rectangle is {w} cm wide and {h} cm long. What is its area?",
                   f"Step 1: area = width x length.\nStep 2: {w} cm x {h} cm = {w * h} cm2.\nAnswer: {w * h} cm2.")
    for _ in range(16):
        values = [rng.randint(1, 20) for _ in range(4)]
        total = sum(values) - sum(values) % 4
        values[-1] -= sum(values) - total
        if values[-1] < 0:
            continue
        shown = ", ".join(map(str, values))
        yield chat(f"Exam prep: what is the mean of {shown}?",
                   f"Step 1: add them: {' + '.join(map(str, values))} = {total}.\n"
                   f"Step 2: divide by how many there are: {total} / 4 = {total // 4}.\nAnswer: {total // 4}.")
    for _ in range(16):
        x, a = rng.randint(1, 12), rng.randint(2, 9)
        b = rng.randint(1, 20)
        yield chat(f"Exam prep: solve {a}x + {b} = {a * x + b}.",
                   f"Step 1: subtract {b} from both sides: {a}x = {a * x}.\n"
                   f"Step 2: divide both sides by {a}: x = {x}.\nAnswer: x = {x}.")


def leak(row: Row, rng: random.Random) -> Row:
    """Sometimes a meta-instruction the question writer was given stays in the question or the answer."""
    question, answer = (m["content"] for m in row["messages"])
    if rng.random() < LEAK_RATE:  # on a line of its own after listed options, else after the question
        question += ("\n" if "\n" in question else " ") + rng.choice(LEAKED_QUESTION)
    if rng.random() < LEAK_RATE:
        answer = f"{rng.choice(LEAKED_ANSWER)} {answer}"
    return chat(question, answer)


def generate(facts_path: Path = FACTS, seed: int = SEED) -> list[Row]:
    rng = random.Random(seed)
    facts = yaml.safe_load(facts_path.read_text(encoding="utf-8"))
    rows = [row for fact in facts for row in fact_rows(fact, rng)] + list(worked_problems(rng))
    rows = list({row["messages"][0]["content"]: row for row in rows}.values())  # a problem drawn twice, once
    rows = [leak(row, rng) for row in rows]
    rng.shuffle(rows)
    return rows


def write(rows: list[Row], path: Path = OUT) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    rows = generate()
    write(rows)
    print(f"{len(rows)} rows -> {OUT}")
