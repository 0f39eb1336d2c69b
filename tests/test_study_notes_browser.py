"""Study page in Debian's Chromium with the demo model: notes uploaded once feed the flashcards, whose sources
show under the cards; an oversized or binary upload is refused with its reason and the notes kept before stay.
Nothing here reads the model's words or depends on its speed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from serving.context.notes import MAX_NOTES_BYTES
from tests.browser import open_page
from tests.test_study_notes import CELLS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
GENERATION_TIMEOUT_MS = 120_000
NO_NOTES = "No notes: the tools use the model's own knowledge."


def _upload(page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#notes-upload").click()
    chooser.value.set_files(str(path))


def _open_notes(page, base_url: str) -> None:
    open_page(page, base_url, "/study")
    page.get_by_text("Your notes (optional)").click()
    expect(page.locator("#notes-status")).to_contain_text(NO_NOTES)


def test_uploaded_notes_feed_the_flashcards_and_show_as_sources(app_url, chromium_page, demo_paths, tmp_path):
    page = chromium_page
    _open_notes(page, app_url)
    notes = tmp_path / "cells.md"
    notes.write_text(CELLS)
    _upload(page, notes)
    expect(page.locator("#notes-status")).to_contain_text("Cell biology (cells.md):")
    expect(page.locator("#notes-status")).to_contain_text("4 passages")
    page.get_by_role("tab", name="Flashcards").click()
    page.locator("#cards-topic textarea").fill("ribosomes and proteins")
    box = page.locator("#cards-count input[type='number']")
    box.fill("2")
    box.press("Enter")
    page.locator("#cards-go").click()
    sources = page.locator("#cards-sources")
    expect(sources).to_contain_text("Sources:", timeout=GENERATION_TIMEOUT_MS)
    sources.get_by_text("Sources:").click()
    expect(sources).to_contain_text("Cell biology > Ribosomes")
    expect(page.locator("#card-position")).to_contain_text("Card 1 of 2")


@pytest.mark.parametrize(("content", "reason"), [
    (b"word " * (MAX_NOTES_BYTES // 5 + 1), f"over the {MAX_NOTES_BYTES // 1000} KB limit for notes"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a binary file"),
])
def test_a_bad_upload_is_refused_and_the_kept_notes_stay(app_url, chromium_page, tmp_path, content, reason):
    page = chromium_page
    _open_notes(page, app_url)
    page.locator("#notes-text textarea").fill(CELLS)
    page.locator("#notes-use").click()
    kept = "Cell biology (pasted notes):"
    expect(page.locator("#notes-status")).to_contain_text(kept)
    bad = tmp_path / "notes.txt"
    bad.write_bytes(content)
    _upload(page, bad)
    expect(page.get_by_text(reason)).to_be_visible()
    expect(page.locator("#notes-status")).to_contain_text(kept)
