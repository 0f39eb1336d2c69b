"""Compare page handlers without a browser: what they write to disk and what they refuse."""

import tempfile

import pytest

from pages.compare import ComparePage
from serving.arena.settings import ArenaSettings
from serving.arena.votes import Vote, from_jsonl
from serving.config import ServingSettings
from serving.engine import Engine
from serving.personas import load_personas


@pytest.fixture
def page(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    engine = Engine(registry, ServingSettings(ram_budget_mb=64))
    return ComparePage(engine, load_personas(), ArenaSettings(votes_db=tmp_path / "votes.db"))


def files_under(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_the_leaderboard_writes_no_files_and_exports_are_written_when_asked(page, tmp_path):
    page.store.record(Vote("r1", "demo-base", "demo-support", "tie", "Hi", "a", "b", {}))
    for _ in range(3):  # page loads, tab switches and votes all refresh the leaderboard
        rows, _plot, summary = page.leaderboard()
    assert "1 votes" in summary and len(rows) == 2
    assert files_under(tmp_path / "tmp") == []
    page.export()
    written = {p.name: p for p in files_under(tmp_path / "tmp" / "iris-votes")}
    assert sorted(written) == ["iris-votes.csv", "iris-votes.jsonl"]
    assert [v.round_id for v in from_jsonl(written["iris-votes.jsonl"].read_text(encoding="utf-8"))] == ["r1"]
