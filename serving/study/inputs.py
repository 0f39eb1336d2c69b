"""What a visitor asks each study tool for, checked before any model runs.

Each request is a frozen pydantic model; `parse` turns a validation failure into one
`StudyInputError` whose message names the field and says what to do, so a page can show it as is.
Dates arrive as `datetime.date` or ISO `YYYY-MM-DD` strings; "today" is passed in, never read from
the clock here, so the checks are testable.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from serving.errors import validation_message

MAX_QUESTIONS = 10
MAX_CARDS = 20
MAX_TOPICS = 12
MAX_PLAN_DAYS = 366
MIN_HOURS, MAX_HOURS = 0.25, 12.0
Difficulty = Literal["easy", "medium", "hard"]


class StudyInputError(ValueError):
    """A request a study tool refuses; `str(err)` is safe to show the visitor."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _topic(value: str) -> str:
    if not value:
        raise ValueError("is empty: type a subject, for example 'photosynthesis'")
    if len(value) > 200:
        raise ValueError(f"is {len(value)} characters long: keep it under 200 (put details in the notes)")
    return value


Topic = Annotated[str, AfterValidator(_topic)]
"""A non-empty subject of at most 200 characters."""
MAX_NAME = 120
MAX_ANSWER = 2000


def _name(value: str) -> str:
    if len(value) > MAX_NAME:
        raise ValueError(f"is {len(value)} characters long: keep it under {MAX_NAME}")
    return value


def _count(maximum: int, noun: str) -> AfterValidator:
    def check(value: int) -> int:
        if not 1 <= value <= maximum:
            raise ValueError(f"is {value}: ask for 1 to {maximum} {noun}")
        return value

    return AfterValidator(check)


class QuizRequest(_Request):
    """Quiz generator: topic, number of questions, difficulty."""

    topic: Topic
    n_questions: Annotated[int, _count(MAX_QUESTIONS, "questions")] = 5
    difficulty: Difficulty = "medium"


class FeedbackRequest(_Request):
    """Answer feedback: the question and the student's answer."""

    question: str
    answer: str

    @field_validator("question", "answer")
    @classmethod
    def _filled(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty: fill it in")
        if len(value) > MAX_ANSWER:
            raise ValueError(f"is {len(value)} characters long: keep it under {MAX_ANSWER}")
        return value


class CheatSheetRequest(_Request):
    """Cheat sheet: a topic and optional notes to condense."""

    topic: Topic
    notes: str = Field("", max_length=4000)


class FlashcardsRequest(_Request):
    """Flashcards: a topic and how many cards."""

    topic: Topic
    n_cards: Annotated[int, _count(MAX_CARDS, "cards")] = 8


class DrillRequest(_Request):
    """Mixed drill: a topic and a difficulty; the mix of question types is fixed."""

    topic: Topic
    difficulty: Difficulty = "medium"


def split_topics(text: str) -> list[str]:
    """Topics typed one per line or separated by commas, blanks and repeats dropped, order kept."""
    parts = [p.strip() for line in text.splitlines() for p in line.split(",")]
    return list(dict.fromkeys(p for p in parts if p))


class PlanRequest(_Request):
    """Study planner: exam date, topics, daily hours, and the day the plan starts."""

    today: dt.date
    """First day of the plan (declared first: the exam date is checked against it)."""
    exam_name: Annotated[str, AfterValidator(_name)] = ""
    """What the exam is called (file names, calendar titles); empty means "Exam"."""
    exam_date: dt.date
    topics: tuple[Topic, ...]
    hours_per_day: float

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("is empty: list at least one topic, one per line or separated by commas")
        if len(value) > MAX_TOPICS:
            raise ValueError(f"has {len(value)} entries: plan at most {MAX_TOPICS} topics at once")
        return value

    @field_validator("hours_per_day")
    @classmethod
    def _hours(cls, value: float) -> float:
        if not MIN_HOURS <= value <= MAX_HOURS:
            raise ValueError(f"is {value:g}: pick between {MIN_HOURS:g} and {MAX_HOURS:g} hours a day")
        return value

    @field_validator("exam_date")
    @classmethod
    def _future(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        today = info.data.get("today")
        if today is None:
            return value
        days = (value - today).days
        if days < 1:
            raise ValueError(f"{value.isoformat()} is not after today ({today.isoformat()}): pick a future date")
        if days > MAX_PLAN_DAYS:
            raise ValueError(f"is {days} days away: plans cover at most {MAX_PLAN_DAYS} days")
        return value

    @property
    def n_days(self) -> int:
        """Study days before the exam: today up to the day before it."""
        return (self.exam_date - self.today).days


RequestT = TypeVar("RequestT", bound=_Request)


_LABELS = {"n_questions": "Number of questions", "n_cards": "Number of cards"}


def parse(model: type[RequestT], **values: object) -> RequestT:
    """Build `model` from raw UI values, or raise StudyInputError listing every problem."""
    try:
        return model(**values)
    except ValidationError as err:
        raise StudyInputError(validation_message(err, labels=_LABELS)) from None
