"""Files a visitor downloads from the study page: plan CSV and `.ics`, flashcards CSV, cheat-sheet Markdown.

Renderers are pure (objects in, text or bytes out); `write_download` is the only function that touches
the disk, writing one file through `serving.downloads` (a fresh folder, old ones swept) for the page to
hand to Gradio. The calendar
follows RFC 5545 via the `icalendar` package: one all-day event per plan day plus the exam itself, each
with a stable UID so re-importing a plan updates it instead of duplicating it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from itertools import groupby
from pathlib import Path

from icalendar import Calendar, Event

from serving import downloads
from serving.study.planner import Session
from serving.study.schemas import CheatSheet, Flashcard

PRODID = "-//Iris//Study planner//EN"
_UID_NAMESPACE = uuid.UUID("8f2b8f6e-3a57-4c1e-9d3e-5f1c2b7a9e01")
PLAN_COLUMNS = ("date", "weekday", "type", "topic", "hours", "task")


def _csv(rows: list[tuple[object, ...]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def plan_rows(sessions: list[Session]) -> list[tuple[str, str, str, str, float, str]]:
    """The plan as table rows, in `PLAN_COLUMNS` order (also what the page shows)."""
    return [(s.date.isoformat(), s.date.strftime("%a"), s.kind, s.topic, s.hours, s.task) for s in sessions]


def plan_csv(sessions: list[Session]) -> str:
    """The plan as CSV with a header row."""
    return _csv([PLAN_COLUMNS, *plan_rows(sessions)])


def _uid(*parts: str) -> str:
    return f"{uuid.uuid5(_UID_NAMESPACE, '|'.join(parts))}@iris"


def _all_day(summary: str, day: dt.date, description: str, uid: str, stamp: dt.datetime) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + dt.timedelta(days=1))
    event.add("summary", summary)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")  # a study reminder should not block the day as busy
    return event


def _day_summary(day_sessions: list[Session]) -> str:
    hours = sum(s.hours for s in day_sessions)
    verb = "Review" if day_sessions[0].kind == "review" else "Study"
    return f"{verb}: {', '.join(s.topic for s in day_sessions)} ({hours:g} h)"


def plan_ics(sessions: list[Session], exam_date: dt.date, exam_name: str, now: dt.datetime) -> bytes:
    """An iCalendar file: one all-day event per plan day and one for the exam.

    `now` (timezone-aware) becomes every event's DTSTAMP; passing it in keeps the output testable.
    """
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"Study plan: {exam_name}")
    stamp = now.astimezone(dt.timezone.utc)
    for day, group in groupby(sessions, key=lambda s: s.date):
        day_sessions = list(group)
        description = "\n".join(f"{s.topic} ({s.hours:g} h): {s.task}" for s in day_sessions)
        uid = _uid(exam_name, exam_date.isoformat(), day.isoformat())
        calendar.add_component(_all_day(_day_summary(day_sessions), day, description, uid, stamp))
    exam_uid = _uid(exam_name, exam_date.isoformat(), "exam")
    calendar.add_component(_all_day(f"Exam: {exam_name}", exam_date, "Good luck!", exam_uid, stamp))
    return calendar.to_ical()


def flashcards_csv(cards: tuple[Flashcard, ...] | list[Flashcard]) -> str:
    """Front,Back CSV with Anki's file headers (Anki 2.1.54+ reads them; older versions skip '#' lines)."""
    header = "#separator:comma\n#html:false\n#columns:Front,Back\n"
    return header + _csv([(card.front, card.back) for card in cards])


def cheat_sheet_markdown(sheet: CheatSheet) -> str:
    """The sheet as Markdown: a title, one heading per section, bullet points."""
    lines = [f"# {sheet.title}"]
    for section in sheet.sections:
        lines += ["", f"## {section.heading}", *(f"- {point}" for point in section.points)]
    return "\n".join(lines) + "\n"


def safe_filename(text: str, suffix: str) -> str:
    """A short filesystem- and URL-safe name from visitor text, e.g. 'cell-biology-plan.ics'."""
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "study"
    return f"{stem}{suffix}"


def write_download(content: str | bytes, filename: str) -> Path:
    """Write `content` to `filename` in a fresh download folder (old ones are swept) and return its path."""
    return downloads.write_download(content, filename, "study")
