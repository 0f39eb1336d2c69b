"""Sources under a support answer in Debian's Chromium: the real app (app.py on loopback, its context layer built
at start-up from the committed help center and orders) answers a question naming an order; whatever the model
says, a collapsed "Sources" block under the chat lists the passages and the order record the answer was given,
each opening to its excerpt, and it is still there after a reload (kept with the conversation). Above it, the answer
check's line is there exactly when the answer states a figure (which figures the model states is its business)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from serving.context.check import figures_of
from serving.context.orders import read_orders_csv
from tests.browser import open_page
from training.demo.orders import ORDERS_CSV

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ANSWER_TIMEOUT_MS = 180_000  # waits for the answer to finish, however slow the model is here
BOT = "#chatbot [data-testid='bot']"
SOURCES = "#chat-sources details.iris-sources"
ORDER = next(o for o in read_orders_csv(ORDERS_CSV) if o.status == "shipped")


def test_sources_appear_under_the_answer_and_open_to_their_excerpts(app_url, chromium_page):
    page = chromium_page
    open_page(page, app_url, "/")
    page.locator("#message textarea").fill(f"Where is my order {ORDER.id}? How long does shipping take?")
    page.locator("#send").click()
    sources = page.locator(SOURCES)
    expect(sources).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)  # attached when the answer is done
    summary = sources.locator("summary").first
    expect(summary).to_contain_text("passage")
    expect(summary).to_contain_text("1 order record")
    answer = page.locator(BOT).last.inner_text()
    check = page.locator("#chat-sources p.iris-check")
    expect(check).to_have_count(1 if figures_of(answer) else 0)
    if figures_of(answer):
        expect(check).to_contain_text(re.compile(r"Not found in its sources: .+\.|figures? in this answer appear"))
    record = sources.locator("details.iris-source", has_text=f"Order {ORDER.id}")
    expect(record).to_be_hidden()  # collapsed until asked for
    summary.click()
    expect(record).to_be_visible()
    expect(sources.locator("details.iris-source summary", has_text="Shipping").first).to_be_visible()
    excerpt = record.locator("p").first
    expect(excerpt).to_be_hidden()
    record.locator("summary").click()
    expect(excerpt).to_contain_text(f"Order {ORDER.id}: status shipped")
    page.reload()
    open_page(page, app_url, "/")
    expect(page.locator(SOURCES)).to_have_count(1)
    expect(page.locator(BOT)).to_have_count(1)
