"""Benchmark (a script, not a test): are quizzes and flashcards made from a student's notes stated in those notes?

For each notes file in data/study_notes/ and each of its topics, the study tools retrieve the notes' passages for
the topic (`StudyTools.passages`, what the /study page sends) and ask the model for a quiz and a deck of
flashcards with those passages in the prompt; then, as a baseline, the same requests without notes. Measured
(`serving.study.grounded.supported`, see its docstring for the exact rule):

- quiz: share of questions whose correct option is supported by one retrieved passage;
- flashcards: share of cards whose back is supported by one retrieved passage;
- beside them, two checks of use (with notes, where the tools key answers to sentences of the notes): the share of
  questions (cards) whose keyed answer (back) shares a content word with the question (front), and the share of
  distinct answers within one quiz (deck); and one sample question and card per notes file, to read.

Same seed for every request; answers that fail to parse count as a failed request (reported), not as hits.

    flock /tmp/iris-cpu.lock .venv/bin/python benchmarks/bench_study_notes.py --model smollm2-135m-instruct

Prints a Markdown report (for benchmarks/RESULTS-study-notes.md).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from serving.context.notes import load_notes  # noqa: E402
from serving.engine import Engine  # noqa: E402
from serving.registry import load_registry  # noqa: E402
from serving.study.grounded import content_words, supported  # noqa: E402
from serving.study.inputs import FlashcardsRequest, QuizRequest  # noqa: E402
from serving.study.tools import StructuredOutputError, StudyTools  # noqa: E402

NOTES_DIR = REPO / "data" / "study_notes"
TOPICS = {
    "french-revolution.md": ["the storming of the Bastille", "the Reign of Terror", "Napoleon and the Directory"],
    "cell-biology.md": ["mitochondria and respiration", "protein synthesis and ribosomes", "mitosis and meiosis"],
    "python-functions.md": ["function parameters and default values", "variable scope", "recursion"],
}
TARGET = 0.8


def run_topic(tools: StudyTools, model: str, notes, topic: str, args, with_notes: bool) -> dict:
    """Hits of one topic's quiz and flashcards, scored against the passages retrieved for it."""
    passages = tools.passages(model, notes, topic)
    sent = passages if with_notes else []
    overrides = {"seed": args.seed, "temperature": args.temperature}
    out = empty_result(len(passages))
    try:
        quiz = tools.quiz(model, QuizRequest(topic=topic, n_questions=args.questions), overrides, passages=sent)
        pairs = [(q.question, q.option(q.answer)) for q in quiz.questions]
        out["quiz"] = [supported(answer, passages) for _, answer in pairs]
        use(out, pairs)
    except StructuredOutputError:
        out["failed"] += 1
    try:
        deck = tools.flashcards(model, FlashcardsRequest(topic=topic, n_cards=args.cards), overrides, passages=sent)
        pairs = [(card.front, card.back) for card in deck.cards]
        out["cards"] = [supported(back, passages) for _, back in pairs]
        use(out, pairs)
    except StructuredOutputError:
        out["failed"] += 1
    return out


def empty_result(passages: int = 0) -> dict:
    return {"quiz": [], "cards": [], "failed": 0, "passages": passages, "related": [], "distinct": [], "samples": []}


def use(out: dict, pairs: list[tuple[str, str]]) -> None:
    """Record whether each answer shares a content word with its question, how many answers are distinct, and
    the first pair as a sample."""
    out["related"] += [bool(content_words(ask) & content_words(answer)) for ask, answer in pairs]
    out["distinct"] += [answer not in [a for _, a in pairs[:i]] for i, (_, answer) in enumerate(pairs)]
    out["samples"].append(pairs[0])


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPU(s)"


def pct(hits: list[bool]) -> str:
    return f"{sum(hits) / len(hits):.0%} ({sum(hits)}/{len(hits)})" if hits else "n/a (0)"


def report(rows: list[tuple[str, str, dict, dict]], args, seconds: float) -> str:
    lines = [f"Model `{args.model}`, seed {args.seed}, temperature {args.temperature}, {args.questions} quiz "
             f"questions and {args.cards} cards per topic; host: {cpu_name()}; {seconds:.0f} s in all.", "",
             "| notes | topic | passages sent | quiz supported (notes) | cards supported (notes) "
             "| quiz (no notes) | cards (no notes) |", "|---|---|---|---|---|---|---|"]
    for name, topic, grounded, base in rows:
        lines.append(f"| {name} | {topic} | {grounded['passages']} | {pct(grounded['quiz'])} | "
                     f"{pct(grounded['cards'])} | {pct(base['quiz'])} | {pct(base['cards'])} |")
    lines.append("")
    for label, side in (("With notes", 2), ("Baseline, the same requests without notes", 3)):
        runs = [row[side] for row in rows]
        quiz, cards = [h for r in runs for h in r["quiz"]], [h for r in runs for h in r["cards"]]
        lines.append(f"**{label}:** quiz {pct(quiz)}, flashcards {pct(cards)}; requests that did not parse: "
                     f"{sum(r['failed'] for r in runs)}.  ")
    lines.append(f"Target: ≥ {TARGET:.0%} each, with notes.")
    for label, side in (("with notes", 2), ("without notes", 3)):
        runs = [row[side] for row in rows]
        lines.append(f"Use, {label}: answers sharing a content word with their question "
                     f"{pct([h for r in runs for h in r['related']])}; distinct answers within one output "
                     f"{pct([h for r in runs for h in r['distinct']])}.  ")
    lines += ["", "Samples with notes (question or front -> keyed answer or back), first topic of each notes file:", ""]
    for name, _, grounded, _ in rows[::3]:
        lines += [f"- {name}: {ask!r} -> {answer!r}" for ask, answer in grounded["samples"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--cards", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the requests without notes")
    args = parser.parse_args()
    engine = Engine(load_registry())
    start = time.perf_counter()
    try:
        tools, rows = StudyTools(engine), []
        for name, topics in TOPICS.items():
            notes = load_notes((NOTES_DIR / name).read_bytes(), name)
            for topic in topics:
                grounded = run_topic(tools, args.model, notes, topic, args, True)
                base = empty_result() if args.no_baseline else run_topic(tools, args.model, notes, topic, args, False)
                rows.append((name, topic, grounded, base))
                print(f"{name} / {topic}: {grounded}", file=sys.stderr, flush=True)
    finally:
        engine.close()
    print(report(rows, args, time.perf_counter() - start))


if __name__ == "__main__":
    main()
