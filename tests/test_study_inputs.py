"""Study tool inputs: bad values are refused with one message naming the field and the fix."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.study.inputs import (
    CheatSheetRequest, FeedbackRequest, FlashcardsRequest, PlanRequest, QuizRequest, StudyInputError, parse,
    split_topics,
)

TODAY = dt.date(2026, 3, 10)


def _error(model, **values) -> str:
    with pytest.raises(StudyInputError) as info:
        parse(model, **values)
    return str(info.value)


def test_valid_quiz_request_is_stripped():
    request = parse(QuizRequest, topic="  cell biology ", n_questions=3, difficulty="easy")
    assert (request.topic, request.n_questions, request.difficulty) == ("cell biology", 3, "easy")


@pytest.mark.parametrize("topic", ["", "   ", "\n"])
def test_empty_topic(topic):
    assert _error(QuizRequest, topic=topic) == "Topic is empty: type a subject, for example 'photosynthesis'"


def test_long_topic_points_to_notes():
    assert "keep it under 200 (put details in the notes)" in _error(CheatSheetRequest, topic="x" * 201)


@pytest.mark.parametrize("n", [0, 11, -1])
def test_question_count_out_of_range(n):
    message = _error(QuizRequest, topic="algebra", n_questions=n)
    assert message == f"Number of questions is {n}: ask for 1 to 10 questions"


def test_every_problem_is_listed_at_once():
    message = _error(QuizRequest, topic="", n_questions=12, difficulty="insane")
    assert message.startswith("Topic is empty")
    assert "Number of questions is 12" in message and "Difficulty" in message


def test_flashcard_count_and_feedback_fields():
    assert _error(FlashcardsRequest, topic="verbs", n_cards=21) == "Number of cards is 21: ask for 1 to 20 cards"
    assert _error(FeedbackRequest, question="Why is the sky blue?", answer=" ") == "Answer is empty: fill it in"


def _plan(**changes) -> dict:
    return {"exam_date": TODAY + dt.timedelta(days=7), "topics": ("algebra", "geometry"), "hours_per_day": 2,
            "today": TODAY, **changes}


def test_valid_plan_accepts_iso_strings():
    request = parse(PlanRequest, **_plan(exam_date="2026-03-17", topics=["algebra"]))
    assert request.exam_date == dt.date(2026, 3, 17) and request.n_days == 7


@pytest.mark.parametrize("exam", [TODAY, TODAY - dt.timedelta(days=3)])
def test_exam_date_not_in_future(exam):
    message = _error(PlanRequest, **_plan(exam_date=exam))
    assert message == f"Exam date {exam.isoformat()} is not after today (2026-03-10): pick a future date"


def test_exam_too_far_and_bad_date():
    assert "plans cover at most 366 days" in _error(PlanRequest, **_plan(exam_date=TODAY + dt.timedelta(days=400)))
    assert _error(PlanRequest, **_plan(exam_date="next week")) == (
        "Exam date is not a date: use YYYY-MM-DD, for example 2026-06-15")


@pytest.mark.parametrize("hours", [0, 0.1, 13, 24, -2])
def test_absurd_hours(hours):
    assert _error(PlanRequest, **_plan(hours_per_day=hours)) == (
        f"Hours per day is {hours:g}: pick between 0.25 and 12 hours a day")


def test_topics_empty_or_too_many():
    assert _error(PlanRequest, **_plan(topics=())).startswith("Topics is empty: list at least one topic")
    assert "plan at most 12 topics" in _error(PlanRequest, **_plan(topics=tuple(f"t{i}" for i in range(13))))


def test_split_topics_accepts_lines_and_commas():
    assert split_topics("Algebra, geometry\n\n  statistics ,Algebra\n") == ["Algebra", "geometry", "statistics"]
    assert split_topics(" \n , ") == []


def test_plan_problems_are_reported_together():
    message = _error(PlanRequest, **_plan(exam_date="2020-01-01", hours_per_day=30))
    assert message == ("Exam date 2020-01-01 is not after today (2026-03-10): pick a future date; "
                       "Hours per day is 30: pick between 0.25 and 12 hours a day")


def test_exam_name_is_bounded():
    assert parse(PlanRequest, **_plan(exam_name="  Biology final ")).exam_name == "Biology final"
    assert _error(PlanRequest, **_plan(exam_name="x" * 121)) == "Exam name is 121 characters long: keep it under 120"


def test_an_oversize_short_answer_is_refused_by_number_before_any_marking(registry):
    from serving.config import ServingSettings
    from serving.engine import Engine
    from serving.study.schemas import Drill, ShortAnswer
    from serving.study.tools import StudyTools

    drill = Drill(short_answer=(ShortAnswer(question="Why?", model_answer="Because."),) * 2)
    tools = StudyTools(Engine(registry, ServingSettings(ram_budget_mb=64)))
    with pytest.raises(StudyInputError, match="Short answer #2: Answer is 2001 characters long: keep it under 2000"):
        tools.mark_short_answers("no-such-model", drill, ["", "x" * 2001])  # an unknown model: nothing may run
