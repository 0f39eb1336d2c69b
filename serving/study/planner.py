"""Study-plan arithmetic: which topic is studied on which day, for how long.

All dates and hours are computed here, by code; the model only proposes the tasks for each topic
(`schemas.PlanContent`), which `fill` places onto the computed days. Study days run from the request's
`today` up to the day before the exam; the last fifth of them (at least one, when there are two or
more days) is kept for review of every topic. No I/O, no model, no Gradio.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from serving.study.inputs import PlanRequest
from serving.study.schemas import PlanContent

REVIEW_SHARE = 5
"""One review day per this many days before the exam (at least one when there are two days)."""


@dataclass(frozen=True)
class PlanDay:
    """One calendar day of the plan."""

    date: dt.date
    kind: Literal["study", "review"]
    topics: tuple[str, ...]
    hours: float
    """Total study hours that day, shared equally by its topics."""


@dataclass(frozen=True)
class Session:
    """One topic on one day: a row of the plan table, CSV and calendar description."""

    date: dt.date
    kind: Literal["study", "review"]
    topic: str
    hours: float
    task: str


def review_days(n_days: int) -> int:
    """How many of `n_days` days before the exam are kept for review."""
    return 0 if n_days < 2 else max(1, n_days // REVIEW_SHARE)


def split_evenly(total: int, parts: int) -> list[int]:
    """`parts` sizes summing to `total`, differing by at most one, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _study_groups(topics: tuple[str, ...], n_study: int) -> list[tuple[str, ...]]:
    """The topics of each study day: contiguous blocks of days per topic, or several topics a day."""
    if n_study >= len(topics):
        sizes = split_evenly(n_study, len(topics))
        return [(topic,) for topic, size in zip(topics, sizes) for _ in range(size)]
    groups, start = [], 0
    for size in split_evenly(len(topics), n_study):
        groups.append(topics[start : start + size])
        start += size
    return groups


def schedule(request: PlanRequest) -> list[PlanDay]:
    """Every day from `request.today` to the eve of the exam, with its topics and hours."""
    n_review = review_days(request.n_days)
    groups = _study_groups(request.topics, request.n_days - n_review)
    groups += [request.topics] * n_review
    return [
        PlanDay(
            date=request.today + dt.timedelta(days=i),
            kind="study" if i < len(groups) - n_review else "review",
            topics=topics,
            hours=request.hours_per_day,
        )
        for i, topics in enumerate(groups)
    ]


def _task_for(tasks: tuple[str, ...], day_index: int, n_days: int) -> str:
    """The task(s) of the `day_index`-th of `n_days` days spent on one topic."""
    if len(tasks) <= n_days:
        return tasks[day_index % len(tasks)]
    sizes = split_evenly(len(tasks), n_days)
    start = sum(sizes[:day_index])
    return "; ".join(tasks[start : start + sizes[day_index]])


def fill(days: list[PlanDay], content: PlanContent, topics: tuple[str, ...]) -> list[Session]:
    """Sessions of the plan: each day's topics with the model's tasks spread over their days.

    `content.topics[i]` holds the tasks of `topics[i]`; a topic the model left out gets a plain task.
    """
    tasks = {t: (content.topics[i].tasks if i < len(content.topics) else (f"Study {t}",)) for i, t in enumerate(topics)}
    study_days = {t: [d for d in days if d.kind == "study" and t in d.topics] for t in topics}
    sessions = []
    for day in days:
        for topic in day.topics:
            if day.kind == "review":
                task = f"Review {topic}: self-test, then redo what you got wrong"
            else:
                task = _task_for(tasks[topic], study_days[topic].index(day), len(study_days[topic]))
            sessions.append(Session(day.date, day.kind, topic, round(day.hours / len(day.topics), 2), task))
    return sessions
