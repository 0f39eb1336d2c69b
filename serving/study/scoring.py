"""Marking: a quiz against the student's picks, and a mixed drill across its question types.

Pure functions over parsed schema objects. Multiple-choice and true/false questions are marked by
code; short answers are marked by the feedback tool (a model call), whose 0-10 scores are passed in,
so this module never calls a model. An unanswered question counts as wrong, never as an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.study.schemas import LETTERS, ChoiceQuestion, Drill, Quiz


@dataclass(frozen=True)
class Mark:
    """The outcome of one question."""

    question: str
    given: str | None
    """The student's answer as shown to them (None when left blank)."""
    expected: str
    points: float
    """Points earned, between 0 and 1."""
    explanation: str = ""

    @property
    def correct(self) -> bool:
        return self.points >= 1.0


@dataclass(frozen=True)
class Result:
    """Marks of a whole quiz or drill."""

    marks: tuple[Mark, ...]

    @property
    def score(self) -> float:
        return sum(m.points for m in self.marks)

    @property
    def total(self) -> int:
        return len(self.marks)

    @property
    def percent(self) -> int:
        return round(100 * self.score / self.total) if self.total else 0

    def summary(self) -> str:
        """E.g. 'Score: 2/3 (67%)'."""
        return f"Score: {self.score:g}/{self.total} ({self.percent}%)"


def letter_of(choice: str | None) -> str | None:
    """The option letter of a radio choice such as 'B. Mitochondria' (or 'B'); None when blank."""
    if not choice:
        return None
    letter = choice.strip()[:1].upper()
    return letter if letter in LETTERS else None


def _mark_choice(question: ChoiceQuestion, choice: str | None) -> Mark:
    letter = letter_of(choice)
    given = f"{letter}. {question.option(letter)}" if letter else None
    expected = f"{question.answer}. {question.option(question.answer)}"
    return Mark(question.question, given, expected, float(letter == question.answer), question.explanation)


def _pad(answers: list, n: int) -> list:
    return list(answers[:n]) + [None] * max(0, n - len(answers))


def score_quiz(quiz: Quiz, choices: list[str | None]) -> Result:
    """Mark each question against the student's choice (a letter, or a radio label starting with one)."""
    return Result(tuple(_mark_choice(q, c) for q, c in zip(quiz.questions, _pad(choices, len(quiz.questions)))))


def _mark_true_false(statement: str, answer: bool, given: bool | None, explanation: str) -> Mark:
    shown = None if given is None else ("True" if given else "False")
    return Mark(statement, shown, "True" if answer else "False", float(given is answer), explanation)


def score_drill(
    drill: Drill,
    choices: list[str | None],
    true_false: list[bool | None],
    short_answers: list[str | None],
    short_scores: list[int | None],
) -> Result:
    """Mark a drill: one point per question; a short answer earns its feedback score / 10."""
    marks = [_mark_choice(q, c) for q, c in zip(drill.multiple_choice, _pad(choices, len(drill.multiple_choice)))]
    marks += [
        _mark_true_false(q.statement, q.answer, given, q.explanation)
        for q, given in zip(drill.true_false, _pad(true_false, len(drill.true_false)))
    ]
    n_short = len(drill.short_answer)
    for q, text, score in zip(drill.short_answer, _pad(short_answers, n_short), _pad(short_scores, n_short)):
        points = (score or 0) / 10 if text else 0.0
        marks.append(Mark(q.question, text or None, q.model_answer, points))
    return Result(tuple(marks))
