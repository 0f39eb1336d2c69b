"""The study tutor chat in Debian's Chromium with the demo model: pasted notes reach the tutor, and the passages
it was given are listed under its answer. Nothing here reads the model's words or depends on its speed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.test_study_notes import CELLS
from tests.test_study_notes_browser import GENERATION_TIMEOUT_MS, _open_notes

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_pasted_notes_reach_the_tutor_and_show_as_sources(app_url, chromium_page, demo_paths):
    page = chromium_page
    _open_notes(page, app_url)
    page.locator("#notes-text textarea").fill(CELLS)
    page.locator("#notes-use").click()
    expect(page.locator("#notes-status")).to_contain_text("Cell biology (pasted notes):")
    page.get_by_role("tab", name="Study chat").click()
    page.locator("#study-message textarea").fill("What do ribosomes build?")
    page.locator("#study-send").click()
    sources = page.locator("#study-sources")
    expect(sources).to_contain_text("Sources:", timeout=GENERATION_TIMEOUT_MS)
    sources.get_by_text("Sources:").click()
    expect(sources).to_contain_text("Cell biology > Ribosomes")
