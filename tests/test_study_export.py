"""Downloads: the plan as CSV and RFC 5545 calendar (parsed back), Anki flashcards CSV, cheat-sheet Markdown."""

from __future__ import annotations

import csv
import datetime as dt
import io

from icalendar import Calendar

from serving.study import export, planner
from serving.study.inputs import PlanRequest
from serving.study.schemas import CheatSheet, Flashcard, PlanContent

TODAY = dt.date(2026, 5, 30)
NOW = dt.datetime(2026, 5, 30, 9, 15, tzinfo=dt.timezone.utc)


def _sessions():
    request = PlanRequest(exam_date=dt.date(2026, 6, 4), topics=("Cells", "Genetics, inheritance"),
                          hours_per_day=2.5, today=TODAY)
    content = PlanContent(topics=[{"tasks": ["Read chapter 1", 'Draw a "cell" diagram']},
                                  {"tasks": ["Punnett squares"]}])
    return request, planner.fill(planner.schedule(request), content, request.topics)


def test_plan_csv_round_trips():
    _, sessions = _sessions()
    rows = list(csv.reader(io.StringIO(export.plan_csv(sessions))))
    assert rows[0] == list(export.PLAN_COLUMNS)
    assert rows[1] == ["2026-05-30", "Sat", "study", "Cells", "2.5", "Read chapter 1"]
    assert rows[2][5] == 'Draw a "cell" diagram'
    assert rows[3][3] == "Genetics, inheritance"
    assert [r[2] for r in rows[1:]] == ["study"] * 4 + ["review"] * 2
    assert len(rows) == 1 + len(sessions)


def test_plan_ics_parses_back_with_one_event_per_day_plus_the_exam():
    request, sessions = _sessions()
    data = export.plan_ics(sessions, request.exam_date, "Biology", NOW)
    calendar = Calendar.from_ical(data)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"] == export.PRODID
    events = calendar.walk("VEVENT")
    starts = [e.decoded("DTSTART") for e in events]
    assert starts == [dt.date(2026, 5, 30) + dt.timedelta(days=i) for i in range(5)] + [dt.date(2026, 6, 4)]
    for event in events:
        assert isinstance(event.decoded("DTSTART"), dt.date) and not isinstance(event.decoded("DTSTART"), dt.datetime)
        assert event.decoded("DTEND") - event.decoded("DTSTART") == dt.timedelta(days=1)
        assert event.decoded("DTSTAMP") == NOW
    assert str(events[0]["SUMMARY"]) == "Study: Cells (2.5 h)"
    assert str(events[4]["SUMMARY"]) == "Review: Cells, Genetics, inheritance (2.5 h)"
    assert 'Cells (2.5 h): Draw a "cell" diagram' in str(events[1]["DESCRIPTION"])
    assert str(events[-1]["SUMMARY"]) == "Exam: Biology"
    assert len({str(e["UID"]) for e in events}) == len(events)


def test_plan_ics_is_rfc5545_text_and_stable():
    request, sessions = _sessions()
    data = export.plan_ics(sessions, request.exam_date, "Biology", NOW)
    lines = data.split(b"\r\n")
    assert lines[0] == b"BEGIN:VCALENDAR" and lines[-2] == b"END:VCALENDAR" and lines[-1] == b""
    assert all(len(line) <= 75 for line in lines)  # folded at 75 octets
    assert b"DTSTART;VALUE=DATE:20260530" in data
    assert data == export.plan_ics(sessions, request.exam_date, "Biology", NOW)  # same UIDs: re-import updates


def test_flashcards_csv_for_anki():
    cards = [Flashcard(front="ATP", back="The cell's energy currency, made in mitochondria."),
             Flashcard(front='Say "hi", twice', back="Line one\nline two")]
    text = export.flashcards_csv(cards)
    header, body = text.split("#columns:Front,Back\n")
    assert header == "#separator:comma\n#html:false\n"
    assert list(csv.reader(io.StringIO(body))) == [[c.front, c.back] for c in cards]


def test_cheat_sheet_markdown():
    sheet = CheatSheet(title="Cells", sections=[
        {"heading": "Organelles", "points": ["Nucleus: DNA", "Ribosome: protein"]},
        {"heading": "Tips", "points": ["Draw it"]},
    ])
    assert export.cheat_sheet_markdown(sheet) == (
        "# Cells\n\n## Organelles\n- Nucleus: DNA\n- Ribosome: protein\n\n## Tips\n- Draw it\n")


def test_safe_filename_and_write_download():
    assert export.safe_filename("  Cell Biology: Unit 3!", "-plan.ics") == "cell-biology-unit-3-plan.ics"
    assert export.safe_filename("???", ".md") == "study.md"
    path = export.write_download(b"BEGIN:VCALENDAR", "x.ics")
    assert path.name == "x.ics" and path.read_bytes() == b"BEGIN:VCALENDAR"
    assert export.write_download("é", "y.md").read_text(encoding="utf-8") == "é"
