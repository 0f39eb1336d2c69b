"""Study page in Debian's Chromium with the demo model: quiz scoring, plan .ics download, flashcards."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from icalendar import Calendar
from playwright.sync_api import expect

from tests.browser import open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
GENERATION_TIMEOUT_MS = 120_000


def _tab(page, base_url: str, name: str) -> None:
    open_page(page, base_url, "/study")
    page.get_by_role("tab", name=name).click()


def _set_number(page, selector: str, value: int) -> None:
    box = page.locator(f"{selector} input[type='number']")
    box.fill(str(value))
    box.press("Enter")


def test_quiz_answer_and_score(app_url, chromium_page, demo_paths):
    page = chromium_page
    _tab(page, app_url, "Quiz")
    page.locator("#quiz-topic textarea").fill("photosynthesis")
    _set_number(page, "#quiz-count", 2)
    page.locator("#quiz-generate").click()
    expect(page.locator("#quiz-check")).to_be_visible(timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#quiz-q2")).to_be_visible()
    expect(page.locator("#quiz-q3")).to_be_hidden()
    page.locator("#quiz-q1 label").first.click()  # answer question 1, leave question 2 blank
    page.locator("#quiz-check").click()
    expect(page.locator("#quiz-score")).to_contain_text(re.compile(r"Score: [0-9.]+/2 \(\d+%\)"))
    expect(page.locator("#quiz-mark1")).to_contain_text(re.compile(r"(Correct\.|Wrong\. Your answer: A\.)"))
    expect(page.locator("#quiz-mark2")).to_contain_text("Not answered. Correct: ")


def test_plan_downloads_a_calendar_that_parses(app_url, chromium_page, demo_paths, tmp_path):
    page = chromium_page
    _tab(page, app_url, "Study planner")
    exam = dt.date.today() + dt.timedelta(days=4)
    date_box = page.locator("#plan-date input").first
    date_box.fill(exam.isoformat())
    page.locator("#plan-name textarea").fill("Biology final")
    page.locator("#plan-topics textarea").fill("cells, genetics")
    page.locator("#plan-go").click()
    expect(page.locator("#plan-ics")).to_be_visible(timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#plan-summary")).to_contain_text("4 days")
    with page.expect_download() as info:
        page.locator("#plan-ics").click()
    assert info.value.suggested_filename == "biology-final-plan.ics"
    path = tmp_path / "plan.ics"
    info.value.save_as(path)
    events = Calendar.from_ical(path.read_bytes()).walk("VEVENT")
    assert [e.decoded("DTSTART") for e in events] == [dt.date.today() + dt.timedelta(days=i) for i in range(5)]
    assert str(events[-1]["SUMMARY"]) == "Exam: Biology final"


def test_flip_through_flashcards(app_url, chromium_page, demo_paths):
    page = chromium_page
    _tab(page, app_url, "Flashcards")
    page.locator("#cards-topic textarea").fill("the water cycle")
    _set_number(page, "#cards-count", 3)
    page.locator("#cards-go").click()
    position = page.locator("#card-position")
    expect(position).to_contain_text("Card 1 of 3 · Front", timeout=GENERATION_TIMEOUT_MS)
    page.locator("#card-flip").click()
    expect(position).to_contain_text("Card 1 of 3 · Back")
    page.locator("#card-next").click()
    expect(position).to_contain_text("Card 2 of 3 · Front")
    page.locator("#card-prev").click()
    expect(position).to_contain_text("Card 1 of 3 · Front")
    page.locator("#card-prev").click()  # wraps around to the last card
    expect(position).to_contain_text("Card 3 of 3 · Front")
    expect(page.locator("#cards-download")).to_be_visible()


def test_bad_plan_input_shows_a_clear_message(app_url, chromium_page):
    page = chromium_page
    _tab(page, app_url, "Study planner")
    page.locator("#plan-date input").first.fill("2020-01-01")
    page.locator("#plan-topics textarea").fill("cells")
    page.locator("#plan-hours input").fill("30")
    page.locator("#plan-go").click()
    expect(page.get_by_text("Hours per day is 30: pick between 0.25 and 12 hours a day")).to_be_visible()
    expect(page.get_by_text("is not after today")).to_be_visible()
    expect(page.locator("#plan-ics")).to_be_hidden()


def test_tutor_chat_streams_an_answer(app_url, chromium_page, demo_paths):
    page = chromium_page
    _tab(page, app_url, "Study chat")
    page.locator("#study-message textarea").fill("What is a cell?")
    page.locator("#study-send").click()
    expect(page.locator("#study-chatbot")).to_contain_text("What is a cell?")
    expect(page.locator("#study-footer")).to_contain_text("tokens/s", timeout=GENERATION_TIMEOUT_MS)
    # Changing the page's model starts a fresh tutor conversation, as on the support chat page.
    page.locator("#study-model input").click()
    page.get_by_role("option", name="Demo support (tiny Llama + LoRA, offline)").click()
    expect(page.locator("#study-notice")).to_contain_text("Model changed: started a new conversation")
    expect(page.locator("#study-chatbot")).not_to_contain_text("What is a cell?")
