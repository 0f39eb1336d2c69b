"""Plan date arithmetic: every day to the exam is planned, review days come last, tasks are spread."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.study import planner
from serving.study.inputs import PlanRequest
from serving.study.schemas import PlanContent

TODAY = dt.date(2026, 2, 26)  # crosses the end of February (2026 is not a leap year)


def _request(days: int, topics=("algebra", "geometry", "statistics"), hours=3.0) -> PlanRequest:
    return PlanRequest(exam_date=TODAY + dt.timedelta(days=days), topics=topics, hours_per_day=hours, today=TODAY)


@pytest.mark.parametrize("days", [1, 2, 3, 5, 10, 31, 366])
def test_one_day_each_from_today_to_the_eve_of_the_exam(days):
    plan = planner.schedule(_request(days))
    assert [d.date for d in plan] == [TODAY + dt.timedelta(days=i) for i in range(days)]
    assert plan[-1].date == _request(days).exam_date - dt.timedelta(days=1)
    assert all(d.hours == 3.0 for d in plan)


def test_month_boundary_dates():
    plan = planner.schedule(_request(4))
    assert [d.date.isoformat() for d in plan] == ["2026-02-26", "2026-02-27", "2026-02-28", "2026-03-01"]


@pytest.mark.parametrize(("days", "review"), [(1, 0), (2, 1), (4, 1), (5, 1), (10, 2), (31, 6)])
def test_review_days_are_the_last_fifth(days, review):
    plan = planner.schedule(_request(days))
    kinds = [d.kind for d in plan]
    assert kinds == ["study"] * (days - review) + ["review"] * review
    assert all(d.topics == ("algebra", "geometry", "statistics") for d in plan if d.kind == "review")


def test_every_topic_is_studied_in_contiguous_even_blocks():
    plan = planner.schedule(_request(10))  # 8 study days for 3 topics: 3 + 3 + 2
    study = [d.topics for d in plan if d.kind == "study"]
    assert study == [("algebra",)] * 3 + [("geometry",)] * 3 + [("statistics",)] * 2


def test_more_topics_than_days_share_days():
    topics = ("a", "b", "c", "d", "e")
    plan = planner.schedule(_request(3, topics))  # 2 study days + 1 review
    assert [d.topics for d in plan] == [("a", "b", "c"), ("d", "e"), topics]


def test_single_day_covers_everything():
    plan = planner.schedule(_request(1))
    assert len(plan) == 1 and plan[0].kind == "study" and plan[0].topics == ("algebra", "geometry", "statistics")


def test_split_evenly():
    assert planner.split_evenly(8, 3) == [3, 3, 2]
    assert planner.split_evenly(2, 4) == [1, 1, 0, 0]
    assert sum(planner.split_evenly(366, 7)) == 366


def _content(*task_lists) -> PlanContent:
    return PlanContent(topics=[{"topic": f"t{i}", "tasks": tasks} for i, tasks in enumerate(task_lists)])


def test_fill_spreads_tasks_and_splits_hours():
    request = _request(5, ("algebra", "geometry"), hours=2.0)  # 4 study days (2 each) + 1 review
    content = _content(["read ch1", "exercises", "past paper"], ["formulas"])
    sessions = planner.fill(planner.schedule(request), content, request.topics)
    rows = [(s.date.day, s.kind, s.topic, s.hours, s.task) for s in sessions]
    assert rows == [
        (26, "study", "algebra", 2.0, "read ch1; exercises"),
        (27, "study", "algebra", 2.0, "past paper"),
        (28, "study", "geometry", 2.0, "formulas"),
        (1, "study", "geometry", 2.0, "formulas"),
        (2, "review", "algebra", 1.0, "Review algebra: self-test, then redo what you got wrong"),
        (2, "review", "geometry", 1.0, "Review geometry: self-test, then redo what you got wrong"),
    ]


def test_fill_uses_visitor_topic_names_and_covers_missing_entries():
    request = _request(3, ("Algebra", "Geometry"))
    sessions = planner.fill(planner.schedule(request), _content(["x"]), request.topics)
    assert {s.topic for s in sessions} == {"Algebra", "Geometry"}
    assert [s.task for s in sessions if s.kind == "study" and s.topic == "Geometry"] == ["Study Geometry"]
