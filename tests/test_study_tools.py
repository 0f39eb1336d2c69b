"""Study services on the real demo model: grammar-constrained output parses into the schemas."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.engine import Engine
from serving.study import planner
from serving.study.inputs import FlashcardsRequest, PlanRequest, QuizRequest, StudyInputError, parse
from serving.study.tools import StudyTools

pytestmark = pytest.mark.slow
MODEL = "demo-base"


@pytest.fixture(scope="module")
def tools(registry, demo_paths):
    engine = Engine(registry)
    yield StudyTools(engine)
    engine.close()


@pytest.mark.parametrize(("seed", "max_new_tokens"), [(0, None), (1, 600)])
def test_demo_quiz_parses_into_the_schema(tools, seed, max_new_tokens):
    request = parse(QuizRequest, topic="photosynthesis", n_questions=2)
    quiz = tools.quiz(MODEL, request, {"seed": seed, "max_new_tokens": max_new_tokens})
    assert len(quiz.questions) == 2
    for question in quiz.questions:
        assert question.question and len(question.options) == 4 and question.answer in "ABCD"


def test_demo_flashcards_parse(tools):
    request = parse(FlashcardsRequest, topic="the water cycle", n_cards=3)
    deck = tools.flashcards(MODEL, request, {"seed": 3, "max_new_tokens": 400})
    assert len(deck.cards) == 3 and all(card.front and card.back for card in deck.cards)


def test_demo_plan_dates_come_from_code(tools):
    today = dt.date(2026, 1, 5)
    request = PlanRequest(exam_date=dt.date(2026, 1, 10), topics=("cells", "genetics"), hours_per_day=2, today=today)
    sessions = tools.plan(MODEL, request, {"seed": 4, "max_new_tokens": 300})
    assert sorted({s.date for s in sessions}) == [today + dt.timedelta(days=i) for i in range(5)]
    assert [s.kind for s in sessions][-2:] == ["review", "review"]
    assert {s.topic for s in sessions} == {"cells", "genetics"} and all(s.task for s in sessions)
    assert len(sessions) == len(planner.schedule(request)) + 1  # the review day holds both topics


def test_a_tight_token_budget_shrinks_strings_instead_of_truncating(tools):
    quiz = tools.quiz(MODEL, parse(QuizRequest, topic="photosynthesis", n_questions=2),
                      {"max_new_tokens": 450, "seed": 5})
    assert len(quiz.questions) == 2 and all(len(q.question) < 100 for q in quiz.questions)


def test_a_budget_too_small_for_the_request_is_refused_clearly(tools):
    with pytest.raises(StudyInputError, match="does not fit the context window of Demo base"):
        tools.quiz(MODEL, parse(QuizRequest, topic="photosynthesis", n_questions=3), {"max_new_tokens": 60})
