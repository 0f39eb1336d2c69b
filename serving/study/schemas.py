"""What the study tools ask the model for: JSON schemas and the pydantic models that parse them.

Each tool sends a JSON schema with its request (`response_format`), so llama.cpp compiles it into a
grammar and even a tiny model can only emit text of that shape; the matching pydantic model then
parses and re-checks the text. The schemas keep to the subset llama.cpp's converter handles
(`type`, `properties`, `required`, `enum`, `minItems`/`maxItems`, string `pattern`) and bound every string
and list, so the longest possible answer is known (`max_chars`) and can be sized to the token budget
(`fit`): a tiny model that never closes a string still ends with complete JSON. This module knows
nothing about prompts, the engine or Gradio.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LETTERS = ("A", "B", "C", "D")
"""Option labels of a multiple-choice question, in order."""

# One character of generated text: no quote, backslash or control character (so no escapes and no
# raw newlines: every grammar step is exactly one character), and no '|', so a chat-template token
# such as <|eot_id|> can never be spelled inside a string (llama.cpp matches special tokens by text).
_CHAR = r'[^"\\|\x00-\x1f]'
_FIRST = r'[^"\\|\x00-\x1f ]'


@dataclass(frozen=True)
class Limits:
    """Character limits of generated strings; smaller limits make the worst-case answer shorter."""

    short: int = 100
    """Option, flashcard front, heading, task."""
    long: int = 240
    """Question, explanation, flashcard back, bullet point."""

    def scaled(self, factor: float) -> "Limits":
        """Both limits times `factor`, never below 8 and 16 characters."""
        return Limits(max(8, int(self.short * factor)), max(16, int(self.long * factor)))


DEFAULT_LIMITS = Limits()


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "pattern": f"^{_FIRST}{_CHAR}{{0,{max_length - 1}}}$"}


def _list(items: dict[str, Any], min_items: int, max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _choice_question(limits: Limits) -> dict[str, Any]:
    return _object(
        question=_text(limits.long),
        options=_list(_text(limits.short), 4, 4),
        answer={"type": "string", "enum": list(LETTERS)},
        explanation=_text(limits.long),
    )


def quiz_schema(n_questions: int, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Exactly `n_questions` four-option questions, each with the correct letter and an explanation."""
    return _object(questions=_list(_choice_question(limits), n_questions, n_questions))


def _statement(choices: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(choices)}


def _grounded_question(limits: Limits, answers: tuple[str, ...]) -> dict[str, Any]:
    return _object(question=_text(limits.long), answer=_statement(answers),
                   wrong_options=_list(_text(limits.short), 3, 3), explanation=_text(limits.long))


def grounded_quiz_schema(n_questions: int, answers: tuple[str, ...],
                         limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A quiz whose correct answers are sentences of the notes (`answers`, from `grounded.statements`), written first, then
    three wrong options and an explanation; `GroundedQuiz.quiz` places the answer among the options."""
    return _object(questions=_list(_grounded_question(limits, answers), n_questions, n_questions))


def feedback_schema(limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """What is right, what is missing, a 0-10 score (an enum: llama.cpp grammars cannot bound integers)."""
    return _object(
        correct=_list(_text(limits.long), 0, 3),
        missing=_list(_text(limits.long), 0, 3),
        score={"type": "integer", "enum": list(range(11))},
        summary=_text(limits.long),
    )


def cheat_sheet_schema(limits: Limits = DEFAULT_LIMITS, max_sections: int = 4) -> dict[str, Any]:
    """A title and a few sections of short bullet points; code renders it as Markdown."""
    section = _object(heading=_text(limits.short), points=_list(_text(limits.long), 1, 4))
    return _object(title=_text(limits.short), sections=_list(section, 1, max_sections))


def flashcards_schema(n_cards: int, limits: Limits = DEFAULT_LIMITS, backs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Exactly `n_cards` front/back cards; with `backs` (sentences of the notes, `grounded.statements`) each back is one of
    them, word for word."""
    card = _object(front=_text(limits.short), back=_statement(backs) if backs else _text(limits.long))
    return _object(cards=_list(card, n_cards, n_cards))


def plan_content_schema(n_topics: int, limits: Limits = DEFAULT_LIMITS, max_tasks: int = 4) -> dict[str, Any]:
    """One entry of concrete study tasks per topic, in the order the topics were given.

    Only the content: which day each task lands on is computed by `planner.py`.
    """
    entry = _object(topic=_text(limits.short), tasks=_list(_text(limits.short), 1, max_tasks))
    return _object(topics=_list(entry, n_topics, n_topics))


def drill_schema(n_choice: int, n_true_false: int, n_short: int, limits: Limits = DEFAULT_LIMITS,
                 answers: tuple[str, ...] = ()) -> dict[str, Any]:
    """A mock exam: multiple-choice, true/false and short-answer questions. With `answers` (sentences of the notes,
    `statements`) the multiple-choice answers and the short answers' model answers are among them, word for word
    (parsed by `GroundedDrill`)."""
    true_false = _object(statement=_text(limits.long), answer={"type": "boolean"}, explanation=_text(limits.long))
    model_answer = _statement(answers) if answers else _text(limits.long)
    short = _object(question=_text(limits.long), model_answer=model_answer)
    choice = _grounded_question(limits, answers) if answers else _choice_question(limits)
    return _object(
        multiple_choice=_list(choice, n_choice, n_choice),
        true_false=_list(true_false, n_true_false, n_true_false),
        short_answer=_list(short, n_short, n_short),
    )


def max_chars(schema: dict[str, Any]) -> int:
    """Length of the longest text llama.cpp's grammar for `schema` accepts, optional spaces included.

    Mirrors llama.cpp's converter: each `space` after a token is at most one character, enum values
    have none. Every string character is one grammar step, so a generation of this many tokens can
    never be cut off (each token carries at least one character; multi-byte characters may cost more).
    """
    if "enum" in schema:
        return max(len(json.dumps(value)) for value in schema["enum"])
    kind = schema["type"]
    if kind == "string":
        return schema["maxLength"] + 3
    if kind == "boolean":
        return len("false") + 1
    if kind == "array":
        n = schema["maxItems"]
        return 4 + n * max_chars(schema["items"]) + 2 * max(n - 1, 0)
    if kind == "object":
        pairs = [len(json.dumps(name)) + 3 + max_chars(value) for name, value in schema["properties"].items()]
        return 4 + sum(pairs) + 2 * max(len(pairs) - 1, 0)
    raise ValueError(f"max_chars does not handle schema type {kind!r}")


def fit(build: Callable[[Limits], dict[str, Any]], budget: int) -> dict[str, Any] | None:
    """`build(limits)` with the largest limits (up to the defaults) whose worst case fits `budget` characters.

    None when even the smallest limits do not fit: the request asks for too many items.
    """
    factor = 1.0
    while True:
        limits = DEFAULT_LIMITS.scaled(factor)
        schema = build(limits)
        if max_chars(schema) <= budget:
            return schema
        if limits == DEFAULT_LIMITS.scaled(0.0):
            return None
        factor *= 0.85


class _Parsed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ChoiceQuestion(_Parsed):
    """A multiple-choice question with four options."""

    question: str = Field(min_length=1)
    """The question text."""
    options: tuple[str, str, str, str]
    """The four options, labelled A-D in order."""
    answer: Literal["A", "B", "C", "D"]
    """Letter of the correct option."""
    explanation: str = ""
    """Why the answer is right."""

    def option(self, letter: str) -> str:
        """The text of the option labelled `letter`."""
        return self.options[LETTERS.index(letter)]


class Quiz(_Parsed):
    """Output of the quiz generator."""

    questions: tuple[ChoiceQuestion, ...] = Field(min_length=1)
    """The questions, in order."""


class GroundedQuestion(_Parsed):
    """A question of `grounded_quiz_schema`: the answer (a sentence of the notes) apart from the wrong options."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    wrong_options: tuple[str, str, str]
    explanation: str = ""

    def choice(self) -> ChoiceQuestion:
        """The four-option question, the answer at a place fixed by the question's text (no bias to one letter)."""
        at = zlib.crc32(self.question.encode()) % len(LETTERS)
        options = list(self.wrong_options)
        options.insert(at, self.answer)
        return ChoiceQuestion(question=self.question, options=tuple(options), answer=LETTERS[at],
                              explanation=self.explanation)


class GroundedQuiz(_Parsed):
    """Output of the quiz generator with notes (`grounded_quiz_schema`)."""

    questions: tuple[GroundedQuestion, ...] = Field(min_length=1)

    def quiz(self) -> Quiz:
        """The same questions as a `Quiz`, as the page shows and scores every quiz."""
        return Quiz(questions=tuple(q.choice() for q in self.questions))


class Feedback(_Parsed):
    """Output of the answer-feedback tool."""

    correct: tuple[str, ...] = ()
    """What the answer gets right."""
    missing: tuple[str, ...] = ()
    """What is missing or wrong."""
    score: int = Field(ge=0, le=10)
    """Mark out of 10."""
    summary: str = ""
    """One or two sentences of overall feedback."""


class Section(_Parsed):
    """One section of a cheat sheet."""

    heading: str = Field(min_length=1)
    points: tuple[str, ...] = Field(min_length=1)


class CheatSheet(_Parsed):
    """Output of the cheat-sheet tool, before rendering to Markdown."""

    title: str = Field(min_length=1)
    sections: tuple[Section, ...] = Field(min_length=1)


class Flashcard(_Parsed):
    """One card: a prompt on the front, the answer on the back."""

    front: str = Field(min_length=1)
    back: str = Field(min_length=1)


class Flashcards(_Parsed):
    """Output of the flashcards tool."""

    cards: tuple[Flashcard, ...] = Field(min_length=1)


class TopicTasks(_Parsed):
    """The model's proposed tasks for one topic of a study plan."""

    topic: str = ""
    """The topic as the model wrote it (the plan uses the visitor's own spelling)."""
    tasks: tuple[str, ...] = Field(min_length=1)
    """Concrete study tasks, easiest first."""


class PlanContent(_Parsed):
    """Output of the planner's model call: tasks per topic, in the visitor's topic order."""

    topics: tuple[TopicTasks, ...] = Field(min_length=1)


class TrueFalse(_Parsed):
    """A statement to judge true or false."""

    statement: str = Field(min_length=1)
    answer: bool
    explanation: str = ""


class ShortAnswer(_Parsed):
    """An open question with a model answer; the feedback tool marks the student's reply."""

    question: str = Field(min_length=1)
    model_answer: str = Field(min_length=1)


class Drill(_Parsed):
    """Output of the mixed drill tool."""

    multiple_choice: tuple[ChoiceQuestion, ...] = ()
    true_false: tuple[TrueFalse, ...] = ()
    short_answer: tuple[ShortAnswer, ...] = ()


class GroundedDrill(_Parsed):
    """Output of the drill with notes (`drill_schema` with `answers`)."""

    multiple_choice: tuple[GroundedQuestion, ...] = ()
    true_false: tuple[TrueFalse, ...] = ()
    short_answer: tuple[ShortAnswer, ...] = ()

    def drill(self) -> Drill:
        """The same exam as a `Drill`, as the page shows and marks every drill."""
        return Drill(multiple_choice=tuple(q.choice() for q in self.multiple_choice), true_false=self.true_false,
                     short_answer=self.short_answer)
