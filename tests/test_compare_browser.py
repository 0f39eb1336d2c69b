"""The Compare page in Debian's Chromium: three panes side by side, the older pair link, a blind round with vote,
reveal and leaderboard, and bad links.

One app instance for this module, offline, serving only the two demo GGUFs (a registry of just them), with
its votes in a temp SQLite file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.arena.pairing import BATTLE_SETTINGS
from serving.arena.votes import VoteStore, public_records
from tests.browser import demo_only_registry, launch_app, markdown_text, open_page, settled_text, shown_markdown

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DEMO = ("demo-base", "demo-support")


@pytest.fixture(scope="module")
def votes_db(tmp_path_factory):
    return tmp_path_factory.mktemp("votes") / "votes.db"


@pytest.fixture(scope="module")
def compare_url(demo_paths, votes_db):
    env = {"IRIS_VOTES_DB": str(votes_db), "IRIS_REGISTRY": str(demo_only_registry(votes_db.parent)), "IRIS_ARENA_BOOTSTRAP_ROUNDS": "20", "IRIS_ARENA_MAX_PROMPT_CHARS": "200"}
    with launch_app(env) as url:
        yield url


def short_answers(page, seed: int = 7) -> None:
    """Open the shared settings and keep generations short and seeded."""
    page.locator("#compare-settings").get_by_text("Persona and shared settings").click()
    for key, value in (("max_new_tokens", 16),):
        page.locator(f"#compare-set-{key} input[type='number']").fill(str(value))
        page.locator(f"#compare-set-{key} input[type='number']").press("Enter")
    page.locator("#compare-set-seed input").fill(str(seed))
    page.locator("#compare-set-seed input").press("Tab")


def wait_text(page, selector: str, text: str, timeout: float = 60_000) -> None:
    """Wait until the element exists and its text contains `text`."""
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=timeout)


def bot_text(page, chat_id: str) -> str:
    return page.locator(f"#{chat_id} [data-testid='bot']").last.inner_text()


def test_three_panes_stream_together_each_from_its_own_model(compare_url, chromium_page):
    page = chromium_page
    open_page(page, compare_url, "/compare?models=demo-base,demo-support,demo-base")
    panes = dict(zip("abc", ("demo-base", "demo-support", "demo-base")))
    page.wait_for_function(f"{shown_markdown('compare-head-c')}.includes('demo-base')")
    assert "/compare?models=demo-base,demo-support,demo-base" in markdown_text(page, "compare-link")
    assert not page.locator("#compare-chat-d").is_visible()
    short_answers(page)
    page.locator("#compare-prompt textarea").fill("Where is my order?")
    page.locator("#compare-send").click()
    for key in panes:
        page.wait_for_function(f"{shown_markdown(f'compare-head-{key}')}.includes('tokens/s')", timeout=120_000)
    for key, model_id in panes.items():
        head = markdown_text(page, f"compare-head-{key}")
        assert f"{key.upper()}: " in head and model_id in head
        assert f"{model_id}-Q4_K_M.gguf" in head and "TTFT" in head and "seed 7" in head
        assert "process peak RSS while this pane ran" in head
    answers = [settled_text(page, f"#compare-chat-{key} [data-testid='bot']") for key in panes]
    assert answers[0] != answers[1] and any(a.strip() for a in answers) and "…" not in answers

    page.locator("#compare-clear").click()
    page.wait_for_function("document.querySelectorAll('#compare-chat-a [data-testid=\"bot\"]').length === 0")
    assert all(page.locator(f"#compare-chat-{key} [data-testid='bot']").count() == 0 for key in "bc")
    page.locator("#compare-panes").get_by_text("2", exact=True).click()  # back to two panes: C is hidden
    page.locator("#compare-chat-c").wait_for(state="hidden")
    page.wait_for_function(f"{shown_markdown('compare-link')}.trim().endsWith('models=demo-base,demo-support')")


def test_the_older_pair_link_still_opens_two_panes(compare_url, chromium_page):
    page = chromium_page
    open_page(page, compare_url, "/compare?a=demo-base&b=demo-support")
    page.wait_for_function(f"{shown_markdown('compare-head-b')}.includes('demo-support')")
    assert "demo-base" in markdown_text(page, "compare-head-a")
    assert page.locator("#compare-chat-b").is_visible() and not page.locator("#compare-chat-c").is_visible()


def test_blind_round_vote_reveal_and_leaderboard(compare_url, chromium_page, votes_db):
    page = chromium_page
    open_page(page, compare_url, "/compare")
    short_answers(page)
    page.get_by_role("tab", name="Blind arena").click()
    wait_text(page, "#arena-reveal", "hidden")  # the tab's own load event may still be processing
    assert page.locator("#arena-vote-a").is_disabled()

    page.locator("#arena-send").click()  # empty prompt
    page.get_by_text("empty prompt").first.wait_for()

    page.locator("#arena-prompt textarea").fill("How do I get a refund?")
    page.locator("#arena-send").click()
    page.wait_for_function("!document.querySelector('#arena-vote-tie').disabled", timeout=120_000)
    chats = page.locator("#arena-chat-a").inner_text() + page.locator("#arena-chat-b").inner_text()
    assert not any(m in chats for m in DEMO)  # names stay hidden before the vote

    page.locator("#arena-vote-tie").click()
    wait_text(page, "#arena-reveal", "A was")
    reveal = page.locator("#arena-reveal").inner_text()
    assert all(m in reveal for m in DEMO) and "Tie" in reveal
    assert page.locator("#arena-vote-a").is_disabled()  # no second vote on this round

    votes = VoteStore(votes_db).votes()
    assert len(votes) == 1 and votes[0].outcome == "tie" and {votes[0].model_a, votes[0].model_b} == set(DEMO)
    assert votes[0].prompt == "How do I get a refund?"
    assert votes[0].settings["max_new_tokens"] == BATTLE_SETTINGS.max_new_tokens  # not the page's sliders
    assert votes[0].settings["seed"] != 7  # the server draws the seed

    page.get_by_role("tab", name="Leaderboard").click()
    table = page.locator("#leaderboard-table").inner_text()
    assert all(m in table for m in DEMO) and "0-0-1" in table
    assert "1 votes" in page.locator("#leaderboard-summary").inner_text()
    assert not page.locator("#export-jsonl").is_visible()  # no export file until one is asked for
    page.locator("#export-prepare").click()
    page.locator("#export-jsonl").wait_for(state="visible")
    assert "What a vote stores" in page.locator("#votes-stored-note").inner_text()
    with page.expect_download() as download:
        page.locator("#export-jsonl").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert [json.loads(line) for line in exported.splitlines()] == public_records(votes)
    assert "refund" not in exported  # the public export holds no prompt or answer

    page.get_by_role("tab", name="Blind arena").click()
    page.locator("#arena-new").click()
    wait_text(page, "#arena-reveal", "hidden")
    assert page.locator("#arena-vote-a").is_disabled() and page.locator("#arena-prompt textarea").input_value() == ""


def test_bad_link_falls_back_to_the_default_pair_and_oversize_prompt_is_refused(compare_url, chromium_page):
    page = chromium_page
    open_page(page, compare_url, "/compare?a=no-such-model&b=demo-base")
    page.get_by_text("The link names a model this server does not have").first.wait_for()
    wait_text(page, "#compare-head-a", "demo-support")  # the offline default: the fine-tune vs its base
    assert "demo-base" in page.locator("#compare-head-b").inner_text()
    page.locator("#compare-prompt textarea").fill("x" * 201)
    page.locator("#compare-send").click()
    page.get_by_text("the limit here is 200").first.wait_for()
    assert page.locator("#compare-chat-a [data-testid='bot']").count() == 0


def test_a_link_with_too_many_models_shows_the_first_four_and_says_so(compare_url, chromium_page):
    page = chromium_page
    open_page(page, compare_url, "/compare?models=demo-base,demo-support,demo-base,demo-support,demo-base")
    page.get_by_text("showing the first 4 of 5").first.wait_for()
    page.wait_for_function(f"{shown_markdown('compare-head-d')}.includes('demo-support')")
    assert page.locator("#compare-chat-d").is_visible()
