"""One sample of every structured study tool from a real model, to judge quality by reading (a script).

Runs quiz, answer feedback, cheat sheet, study planner, flashcards and drill on `--model` (default
`smollm2-135m-instruct`, the real SmolLM2 that installs from PyPI) through `serving.study.tools`,
i.e. exactly what the Study page calls; every answer is JSON under a llama.cpp grammar and is parsed
by the tool's pydantic model. Greedy (temperature 0) so a rerun on the same build gives the same text.

    python benchmarks/study_samples.py --out benchmarks/SAMPLES-study-smollm2.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.engine import Engine  # noqa: E402
from serving.registry import load_registry  # noqa: E402
from serving.study.inputs import (CheatSheetRequest, DrillRequest, FeedbackRequest, FlashcardsRequest,  # noqa: E402
                                  PlanRequest, QuizRequest)
from serving.study.tools import StudyTools  # noqa: E402

GREEDY = {"temperature": 0.0, "seed": 0}


def samples(tools: StudyTools, model: str) -> list[tuple[str, str, object, float]]:
    """(tool, request summary, parsed result, seconds) for each tool."""
    today = dt.date(2026, 12, 1)
    jobs = [
        ("quiz", "photosynthesis, 3 questions, easy", lambda: tools.quiz(model, QuizRequest(topic="photosynthesis", n_questions=3, difficulty="easy"), GREEDY)),
        ("feedback", "Q: What is the boiling point of water at sea level? A: 90 degrees", lambda: tools.feedback(model, FeedbackRequest(question="What is the boiling point of water at sea level?", answer="90 degrees Celsius"), GREEDY)),
        ("cheat sheet", "the French Revolution", lambda: tools.cheat_sheet(model, CheatSheetRequest(topic="the French Revolution"), GREEDY)),
        ("planner", "biology exam in 5 days: cells, genetics, evolution, 2 h/day", lambda: tools.plan(model, PlanRequest(today=today, exam_date=today + dt.timedelta(days=5), topics=("cells", "genetics", "evolution"), hours_per_day=2), GREEDY)),
        ("flashcards", "Spanish greetings, 4 cards", lambda: tools.flashcards(model, FlashcardsRequest(topic="Spanish greetings", n_cards=4), GREEDY)),
        ("drill", "fractions, easy", lambda: tools.drill(model, DrillRequest(topic="fractions", difficulty="easy"), GREEDY)),
    ]
    out = []
    for name, summary, job in jobs:
        started = time.perf_counter()
        out.append((name, summary, job(), time.perf_counter() - started))
    return out


def as_text(result: object) -> str:
    if isinstance(result, list):
        return "\n".join(f"- {item}" for item in result)
    return result.model_dump_json(indent=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    engine = Engine(load_registry())
    try:
        rows = samples(StudyTools(engine), args.model)
    finally:
        engine.close()
    lines = [f"# Study tools on {args.model} (greedy, parsed by each tool's schema)", "",
             "Command: `python benchmarks/study_samples.py --out benchmarks/SAMPLES-study-smollm2.md`", ""]
    for name, summary, result, seconds in rows:
        lines += [f"## {name}: {summary} ({seconds:.1f} s)", "", "```json", as_text(result), "```", ""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
