"""The shared chat in Debian's Chromium: kept conversations, export/import, edit-and-branch, continue, mobile.

A real app on loopback (tests/browser.py) answers with the default support model (SmolLM2 when built, else
the demo model); the assertions never depend on what the model says, only on what the page does with it.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser import markdown_text, open_page, settled_text, shown_markdown

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ANSWER_TIMEOUT_MS = 180_000  # the first answer may wait for a model load on a busy box
BOT = "#chatbot [data-testid='bot']"
USER = "#chatbot [data-testid='user']"


def send(page, text: str) -> None:
    page.locator("#message textarea").fill(text)
    page.locator("#send").click()


def answered(page, count: int, previous_footer: str = "") -> str:
    """Wait for `count` answers and a new footer; the footer text."""
    page.wait_for_function(f"document.querySelectorAll(\"{BOT}\").length >= {count}", timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_function(f"([old]) => {{ const t = {shown_markdown('chat-footer')};"
                           " return t.includes('tokens/s') && t !== old; }", arg=[previous_footer],
                           timeout=ANSWER_TIMEOUT_MS)
    settled_text(page, BOT)
    return markdown_text(page, "chat-footer")


def sidebar_open(page) -> bool:
    """The sidebar slides in and out: its content is in the DOM either way, on screen only when open."""
    return page.evaluate("() => { const b = document.querySelector('#chat-new'); if (!b) return false;"
                         " const r = b.getBoundingClientRect();"
                         " return r.width > 0 && r.right > 0 && r.left < window.innerWidth; }")


def open_sidebar(page) -> None:
    if not sidebar_open(page):
        page.get_by_role("button", name="Toggle Sidebar").click()
    expect(page.locator("#chat-new")).to_be_in_viewport()


def close_sidebar(page) -> None:
    if sidebar_open(page):
        page.get_by_role("button", name="Toggle Sidebar").click()
    expect(page.locator("#chat-new")).not_to_be_in_viewport()


def import_file(page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#chat-import").click()
    chooser.value.set_files(str(path))


def test_a_reload_keeps_the_conversation(app_url, chromium_page):
    page = chromium_page
    open_page(page, app_url, "/")
    send(page, "Where is my parcel number 4411?")
    answered(page, 1)
    page.reload()
    open_page(page, app_url, "/")
    expect(page.locator(USER).first).to_contain_text("Where is my parcel number 4411?")
    expect(page.locator(BOT)).to_have_count(1)
    expect(page.locator("#chat-footer")).to_contain_text("tokens/s")  # the answer's stats were kept too
    open_sidebar(page)
    expect(page.locator("#chat-list")).to_contain_text("Where is my parcel number 4411?")
    # New, rename, switch back, delete.
    page.locator("#chat-new").click()
    expect(page.locator(USER)).to_have_count(0)
    page.locator("#chat-list label", has_text="Where is my parcel number 4411?").click()
    expect(page.locator(USER).first).to_contain_text("4411")
    page.locator("#chat-title textarea").fill("Parcel 4411")
    page.locator("#chat-rename").click()
    expect(page.locator("#chat-list")).to_contain_text("Parcel 4411")
    page.locator("#chat-delete").click()
    expect(page.locator("#chat-list")).not_to_contain_text("Parcel 4411")
    expect(page.locator(USER)).to_have_count(0)


def test_export_then_import_continues_the_conversation(app_url, chromium_page, tmp_path):
    page = chromium_page
    open_page(page, app_url, "/")
    send(page, "Can I return shoes after 20 days?")
    answered(page, 1)
    open_sidebar(page)
    page.locator("#chat-export").click()
    with page.expect_download() as info:
        page.locator("#chat-export-json").click()
    path = tmp_path / "conversation.json"
    info.value.save_as(path)
    exported = json.loads(path.read_text())
    assert exported["format"] == "iris-conversation" and exported["persona"] == "order_assistant"
    assert exported["messages"][0]["content"] == "Can I return shoes after 20 days?"
    assert exported["messages"][1]["stats"]["n_tokens"] > 0 and exported["model"]["id"]
    with page.expect_download() as info:
        page.locator("#chat-export-md").click()
    assert info.value.suggested_filename.endswith(".md")

    page.locator("#chat-new").click()
    expect(page.locator(USER)).to_have_count(0)
    import_file(page, path)
    expect(page.locator(USER).first).to_contain_text("Can I return shoes after 20 days?")
    expect(page.locator("#chat-list label")).to_have_count(2)
    close_sidebar(page)
    footer = markdown_text(page, "chat-footer")
    send(page, "And after 40 days?")  # the imported conversation goes on
    answered(page, 2, footer)
    expect(page.locator(USER)).to_have_count(2)

    # A file that is not a conversation is refused with a reason, and nothing changes.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**exported, "messages": [{"role": "system", "content": "x"}]}))
    open_sidebar(page)
    import_file(page, bad)
    expect(page.get_by_text("field 'messages.0.role'")).to_be_visible()
    expect(page.locator(USER)).to_have_count(2)


def test_an_imported_code_block_renders_with_a_copy_button(app_url, chromium_page, tmp_path):
    page = chromium_page
    open_page(page, app_url, "/")
    path = tmp_path / "code.json"
    path.write_text(json.dumps({
        "format": "iris-conversation", "version": 1, "title": "Code", "persona": "order_assistant",
        "model": {"id": "demo-support"}, "messages": [
            {"role": "user", "content": "Show me a loop"},
            {"role": "assistant", "content": "Here:\n\n```python\nfor i in range(3):\n    print(i)\n```\n\n**Done.**"}]}))
    open_sidebar(page)
    import_file(page, path)
    code = page.locator(f"{BOT} pre code")
    expect(code).to_contain_text("print(i)")
    expect(page.locator(f"{BOT} strong")).to_have_text("Done.")  # Markdown, not raw asterisks
    expect(page.locator(f"{BOT} pre button, {BOT} .code_wrap button, {BOT} button.copy_code_button").first).to_be_attached()


def test_edit_a_question_and_switch_back_to_the_old_branch(app_url, chromium_page):
    page = chromium_page
    open_page(page, app_url, "/")
    send(page, "How do I cancel order 77?")
    footer = answered(page, 1)
    first_answer = page.locator(BOT).first.inner_text()
    page.locator(USER).first.hover()
    page.locator("#chatbot button[aria-label='Edit']").first.click()
    box = page.locator("#chatbot textarea").first
    box.fill("How do I change the address of order 77?")
    page.locator("#chatbot button[aria-label='Submit']").first.click()
    answered(page, 1, footer)
    expect(page.locator(USER).first).to_contain_text("change the address of order 77")
    branches = page.locator("#chat-branches")
    expect(branches).to_be_visible()
    branches.locator("input").click()
    page.get_by_role("option", name="Message 1 was: How do I cancel order 77?", exact=False).click()
    expect(page.locator(USER).first).to_contain_text("How do I cancel order 77?")
    expect(page.locator(BOT).first).to_have_text(first_answer)
    # ...and the edited version is now the branch to switch back to.
    branches.locator("input").click()
    expect(page.get_by_role("option", name="change the address", exact=False)).to_be_visible()


def set_max_tokens(page, value: int) -> None:
    page.get_by_text("Generation settings").click()
    page.locator("#set-max_new_tokens input[type='number']").fill(str(value))
    page.locator("#set-max_new_tokens input[type='number']").press("Enter")


def test_an_answer_cut_off_by_the_token_limit_can_be_continued(endless_app_url, chromium_page):
    # The model cannot end an answer by itself here, so the first answer and its continuation both reach the limit.
    page = chromium_page
    open_page(page, endless_app_url, "/")
    set_max_tokens(page, 8)
    send(page, "Explain in detail, step by step, everything about returning a damaged item.")
    footer = answered(page, 1)
    expect(page.locator("#chat-notice")).to_contain_text("stopped at the token limit")
    expect(page.locator("#chat-continue")).to_be_visible()
    before = page.locator(BOT).first.inner_text()
    page.locator("#chat-continue").click()
    answered(page, 1, footer)
    expect(page.locator("#chat-footer")).to_contain_text(" 8 tokens ")  # the continuation ran to its limit too
    expect(page.locator(BOT)).to_have_count(1)  # the same answer goes on, no new one
    after = settled_text(page, BOT)
    assert after.startswith(before.rstrip()[:20]) and len(after) > len(before), (before, after)
    expect(page.locator("#chat-continue")).to_be_visible()  # cut off again at the limit: it may go on


@pytest.fixture
def phone_page(chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_the_pages_work_on_a_phone(app_url, phone_page):
    page = phone_page
    for path in ("/study", "/compare", "/"):
        open_page(page, app_url, path)
        assert fits_the_screen(page), path
    send(page, "Where is my order?")
    page.wait_for_function(f"document.querySelectorAll(\"{BOT}\").length >= 1", timeout=ANSWER_TIMEOUT_MS)
    page.locator("#stop").click()  # stops the answer if it still runs; either way the page answers
    answered(page, 1)
    page.locator("#persona input").click()
    page.get_by_role("option", name="Technical Support").click()
    expect(page.locator("#chat-notice")).to_contain_text("Started a new conversation with Technical Support",
                                                         timeout=ANSWER_TIMEOUT_MS)
    open_sidebar(page)
    expect(page.locator("#chat-list")).to_contain_text("Where is my order?")
    assert fits_the_screen(page)


# Records every text the queue line (#chat-status) shows, so a short wait is not missed between polls.
WATCH_STATUS = """() => {
  window.__statuses = [];
  const node = document.querySelector('#chat-status');
  const shown = () => node.querySelector('[data-testid="markdown"]')?.innerText.trim() ?? '';  // not the progress
  new MutationObserver(() => { const t = shown(); if (t) window.__statuses.push(t); })
    .observe(node, {subtree: true, childList: true, characterData: true});
}"""


def test_a_visitor_waiting_for_a_busy_model_sees_the_queue(endless_app_url, chromium_browser):
    # One slot, and a first answer that cannot end by itself before it is stopped: the second visitor must wait.
    contexts = [chromium_browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        first, second = (context.new_page() for context in contexts)
        for page in (first, second):
            page.set_default_timeout(60_000)
            open_page(page, endless_app_url, "/")
        set_max_tokens(first, 1024)  # the persona's 256 can be over before the second visitor's click on a loaded box
        send(first, "Explain every billing option you know in full detail.")
        first.wait_for_function(f"document.querySelectorAll(\"{BOT}\").length >= 1 && "
                                f"document.querySelector(\"{BOT}\").innerText.length > 0", timeout=ANSWER_TIMEOUT_MS)
        second.evaluate(WATCH_STATUS)
        set_max_tokens(second, 16)
        send(second, "Where is my order?")
        second.wait_for_function("window.__statuses.length > 0", timeout=ANSWER_TIMEOUT_MS)
        expect(first.locator("#chat-footer")).not_to_contain_text("tokens/s")  # the first answer still runs
        first.locator("#stop").click()
        answered(second, 1)
        seen = second.evaluate("window.__statuses")
        assert seen and all(text for text in seen)  # the engine's words: position and estimated wait
        second.wait_for_function(f"{shown_markdown('chat-status')}.trim() === ''")  # gone once the answer streams
    finally:
        for context in contexts:
            context.close()


def test_the_study_tutor_keeps_its_conversation_too(app_url, chromium_page):
    page = chromium_page
    open_page(page, app_url, "/study")
    page.get_by_role("tab", name="Study chat").click()
    page.locator("#study-message textarea").fill("What is osmosis, in one line?")
    page.locator("#study-send").click()
    expect(page.locator("#study-footer")).to_contain_text("tokens/s", timeout=ANSWER_TIMEOUT_MS)
    page.reload()
    open_page(page, app_url, "/study")
    page.get_by_role("tab", name="Study chat").click()
    expect(page.locator("#study-chatbot")).to_contain_text("What is osmosis, in one line?")
    open_page(page, app_url, "/")  # each chat keeps its own list: the support chat does not show the tutor's
    expect(page.locator(USER)).to_have_count(0)
