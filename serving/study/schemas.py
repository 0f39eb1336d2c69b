"""What the study tools ask the model for: JSON schemas and the pydantic models that parse them.

Each tool sends a JSON schema with its request (`response_format`), so llama.cpp compiles it into a
grammar and even a tiny model can only emit text of that shape; the matching pydantic model then
parses and re-checks the text. The schemas keep to the subset llama.cpp's converter handles
(`type`, `properties`, `required`, `enum`, `minItems`/`maxItems`, `minLength`/`maxLength` on typed
strings) and bound every string and list, so a model cannot ramble past the token budget inside one
field. This module knows nothing about prompts, the engine or Gradio.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LETTERS = ("A", "B", "C", "D")
"""Option labels of a multiple-choice question, in order."""

# Character limits of generated fields: long enough for a real model's sentence, short enough that
# a looping tiny model hits the limit well before the token budget.
SHORT = 100
"""Option, flashcard front, heading, task."""
LONG = 240
"""Question, explanation, flashcard back, bullet point."""


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def _list(items: dict[str, Any], min_items: int, max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _choice_question() -> dict[str, Any]:
    return _object(
        question=_text(LONG),
        options=_list(_text(SHORT), 4, 4),
        answer={"type": "string", "enum": list(LETTERS)},
        explanation=_text(LONG),
    )


def quiz_schema(n_questions: int) -> dict[str, Any]:
    """Exactly `n_questions` four-option questions, each with the correct letter and an explanation."""
    return _object(questions=_list(_choice_question(), n_questions, n_questions))


def feedback_schema() -> dict[str, Any]:
    """What is right, what is missing, a 0-10 score (an enum: llama.cpp grammars cannot bound integers)."""
    return _object(
        correct=_list(_text(LONG), 0, 4),
        missing=_list(_text(LONG), 0, 4),
        score={"type": "integer", "enum": list(range(11))},
        summary=_text(LONG),
    )


def cheat_sheet_schema(max_sections: int = 6) -> dict[str, Any]:
    """A title and a few sections of short bullet points; code renders it as Markdown."""
    section = _object(heading=_text(SHORT), points=_list(_text(LONG), 1, 5))
    return _object(title=_text(SHORT), sections=_list(section, 1, max_sections))


def flashcards_schema(n_cards: int) -> dict[str, Any]:
    """Exactly `n_cards` front/back cards."""
    card = _object(front=_text(SHORT), back=_text(LONG))
    return _object(cards=_list(card, n_cards, n_cards))


def plan_content_schema(n_topics: int, max_tasks: int = 4) -> dict[str, Any]:
    """One entry of concrete study tasks per topic, in the order the topics were given.

    Only the content: which day each task lands on is computed by `planner.py`.
    """
    entry = _object(topic=_text(SHORT), tasks=_list(_text(SHORT), 1, max_tasks))
    return _object(topics=_list(entry, n_topics, n_topics))


def drill_schema(n_choice: int, n_true_false: int, n_short: int) -> dict[str, Any]:
    """A mock exam: multiple-choice, true/false and short-answer questions."""
    true_false = _object(statement=_text(LONG), answer={"type": "boolean"}, explanation=_text(LONG))
    short = _object(question=_text(LONG), model_answer=_text(LONG))
    return _object(
        multiple_choice=_list(_choice_question(), n_choice, n_choice),
        true_false=_list(true_false, n_true_false, n_true_false),
        short_answer=_list(short, n_short, n_short),
    )


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
