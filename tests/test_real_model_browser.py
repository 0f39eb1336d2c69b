"""The real pair in Debian's Chromium: SmolLM2-135M-Instruct (from its PyPI package) and Iris's support
fine-tune of it, the LoRA adapter committed in release/ and served over that base, are the offline defaults; `/`
streams a support answer, `/compare` shows two different ones, the fine-tune's pane naming its LoRA file and base.

Nothing is built first. Nothing here depends on the exact words: only that answers stream, differ and come from the
right files.
"""

import pytest

from tests.browser import open_page
from tests.test_app_browser import WATCH_STREAM, footer, send, wait_for_answer
from tests.test_compare_browser import bot_text, short_answers, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]
QUESTION = "Hi, where is my order BL-12345? It still has not arrived."


@pytest.fixture(scope="module")
def real_pair(registry):
    from serving.resolve import Resolver

    found = Resolver(registry).availability(registry.get("smollm2-135m-support"))
    if not found.available:
        pytest.fail(f"the shipped support adapter cannot be served: {found.reason}")
    return found.path


def test_support_chat_streams_an_answer_from_the_fine_tune_by_default(real_pair, app_url, chromium_page):
    page = chromium_page
    open_page(page, app_url, "/")
    page.wait_for_function("(document.querySelector('#model input')?.value || '').includes('SmolLM2 135M Support')")
    page.evaluate(WATCH_STREAM)
    send(page, QUESTION)
    answer = wait_for_answer(page, 1)
    assert answer.strip() and "<|" not in answer
    assert len(set(page.evaluate("window.__lengths"))) >= 2  # streamed: the bubble grew in steps
    shown = footer(page)
    assert "smollm2-135m-support" in shown and "tokens/s" in shown


def test_compare_defaults_to_the_fine_tune_and_its_base_with_different_answers(real_pair, app_url, chromium_page):
    page = chromium_page
    open_page(page, app_url, "/compare")
    wait_text(page, "#compare-head-a", "smollm2-135m-support-lora-f16.gguf over smollm2-135m-instruct")
    wait_text(page, "#compare-head-b", "smollm2-135m-instruct")
    short_answers(page)
    page.locator("#compare-set-max_new_tokens input[type='number']").fill("48")
    page.locator("#compare-set-max_new_tokens input[type='number']").press("Enter")
    page.locator("#compare-prompt textarea").fill(QUESTION)
    page.locator("#compare-send").click()
    wait_text(page, "#compare-head-b", "tokens/s", timeout=180_000)
    wait_text(page, "#compare-head-a", "tokens/s", timeout=180_000)
    tuned, base = bot_text(page, "compare-chat-a"), bot_text(page, "compare-chat-b")
    assert tuned.strip() and base.strip() and tuned != base
