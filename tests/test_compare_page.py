"""Compare page handlers without a browser: what they write to disk and what they refuse."""

import json
import tempfile

import gradio as gr
import pytest

from pages.compare import ComparePage
from serving.arena.settings import ArenaSettings
from serving.arena.votes import Vote, from_csv, from_jsonl
from serving.config import ServingSettings
from serving.engine import Engine
from serving.personas import load_personas


OWNER = "owner-secret"


@pytest.fixture
def page(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    engine = Engine(registry, ServingSettings(ram_budget_mb=64))
    return ComparePage(engine, load_personas(), ArenaSettings(votes_db=tmp_path / "votes.db", export_token=OWNER))


@pytest.fixture
def live_page(registry, demo_paths, tmp_path):
    """A page whose engine can load the demo models (the budget above is too small for any)."""
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048))
    yield ComparePage(engine, load_personas(), ArenaSettings(votes_db=tmp_path / "votes.db"))
    engine.close()


def exported(tmp_path) -> dict[str, str]:
    """The newest export's files by name."""
    files = sorted(files_under(tmp_path / "tmp" / "iris-votes"), key=lambda p: p.stat().st_mtime_ns)
    return {p.name: p.read_text(encoding="utf-8") for p in files}


def files_under(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_the_leaderboard_writes_no_files_and_exports_are_written_when_asked(page, tmp_path):
    page.store.record(Vote("r1", "demo-base", "demo-support", "tie", "Hi", "a", "b", {}))
    for _ in range(3):  # page loads, tab switches and votes all refresh the leaderboard
        rows, _plot, summary = page.leaderboard()
    assert "1 votes" in summary and len(rows) == 2
    assert files_under(tmp_path / "tmp") == []
    page.export()
    assert sorted(p.name for p in files_under(tmp_path / "tmp" / "iris-votes")) == ["iris-battles.csv",
                                                                                  "iris-battles.jsonl"]


def test_the_public_export_holds_only_counted_pairs_and_verdicts(page, tmp_path):
    page.store.record(Vote("r1", "demo-base", "demo-support", "a", "my secret prompt", "x", "y", {}))
    page.store.record(Vote("r2", "demo-base", "demo-support", "b", "who are you", "I am Llama", "y", {},
                           anonymous=False))
    page.export("")
    files = exported(tmp_path)
    assert "secret" not in files["iris-battles.csv"] + files["iris-battles.jsonl"]
    rows = [json.loads(line) for line in files["iris-battles.jsonl"].splitlines()]
    assert rows == [{"model_a": "demo-base", "model_b": "demo-support", "outcome": "a",
                     "date": page.store.votes()[0].created_at[:10]}]


def test_the_full_export_needs_the_owners_token_and_its_csv_cannot_run_formulas(page, tmp_path):
    page.store.record(Vote("r1", "demo-base", "demo-support", "a", "=HYPERLINK(\"http://x\")", "+1", "@SUM(A1)", {}))
    with pytest.raises(gr.Error, match="owner token is wrong"):
        page.export("guess")
    page.export(OWNER)
    files = exported(tmp_path)
    assert from_jsonl(files["iris-votes-full.jsonl"]) == page.store.votes()
    cells = files["iris-votes-full.csv"].splitlines()[1]
    assert "'=HYPERLINK" in cells and ",'+1," in cells and ",'@SUM(A1)," in cells
    assert from_csv(files["iris-votes-full.csv"]) == page.store.votes()  # the escape round-trips


def test_a_links_query_values_are_not_echoed_into_the_page(page, monkeypatch):
    monkeypatch.setattr(page, "available", lambda: ["demo-base", "demo-support"])
    crafted = "Your account is locked: call +1 555 0100"
    panes, warning = page.initial_panes({"a": crafted, "b": "demo-base"})
    assert panes == ["demo-support", "demo-base"] and "does not have" in warning and crafted not in warning
    panes, warning = page.initial_panes({"models": f"demo-base,{crafted}"})
    assert panes == ["demo-support", "demo-base"] and "does not have" in warning and crafted not in warning


def run_args(max_new_tokens: int, history=None) -> tuple:
    """side_by_side's inputs after the prompt: 3 panes (pane D unused), no system prompt, greedy settings."""
    return (3, "demo-base", "demo-support", "demo-base", None, "", history, 0.0, 0.9, 40, max_new_tokens, 1.1, 1)


def test_stop_ends_every_pane_of_that_visitors_run_and_no_one_elses(live_page):
    """Two visitors' 3-pane runs at once on the real demo models; one presses Stop (the handler's own path)."""
    page = live_page
    mine = page.side_by_side("Tell me about refunds", *run_args(1024))
    theirs = page.side_by_side("Where is my order?", *run_args(24))
    first = next(mine)
    next(theirs)
    while not any(chat for chat in first[2:5]):  # until a pane of mine shows its turn
        first = next(mine)
    page.stop(first[1])  # my history, as the Stop button sends it
    heads_mine = list(mine)[-1][6:9]
    heads_theirs = list(theirs)[-1][6:9]
    assert all("finish:" in h for h in heads_mine + heads_theirs)  # every pane of both runs has ended
    assert "finish: cancelled" in " ".join(heads_mine) and "cancelled" not in " ".join(heads_theirs)
    assert page.stops.running(first[1].conversation_id) == 0


def test_a_pane_without_a_model_is_refused(page):
    with pytest.raises(gr.Error, match="Pick a model for every pane"):
        next(page.side_by_side("Hi", 3, "demo-base", None, "demo-base", None, "", None, 0.0, 0.9, 40, 8, 1.1, 1))
