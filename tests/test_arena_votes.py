"""Vote store: one committed transaction per vote, one vote per round, durable across restarts and SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from serving.arena.settings import ArenaSettings
from serving.arena.votes import (
    DuplicateVote, Vote, VoteError, VoteStore, from_csv, from_jsonl, to_csv, to_jsonl, votes_db_path,
)
from tests.conftest import REPO


def make_vote(round_id="r1", outcome="a", **overrides) -> Vote:
    data = dict(
        round_id=round_id, model_a="demo-base", model_b="demo-support", outcome=outcome,
        prompt="How do I reset my password?", answer_a="Click 'Forgot password'.",
        answer_b='Open "Settings",\nthen "Security" — done ✓', settings={"temperature": 0.7, "seed": 42},
    )
    return Vote(**{**data, **overrides})


def test_path_comes_from_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("IRIS_VOTES_DB", str(tmp_path / "sub" / "v.db"))
    store = VoteStore()
    assert store.path == tmp_path / "sub" / "v.db" == votes_db_path()
    assert store.path.exists()


def test_connection_is_wal(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_record_fills_timestamp_and_reads_back_everything(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    saved = store.record(make_vote())
    assert saved.created_at.endswith("+00:00")
    assert store.votes() == [saved]
    assert store.has_vote("r1") and not store.has_vote("r2")


def test_second_vote_on_a_round_is_refused_and_the_first_kept(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    first = store.record(make_vote(outcome="a"))
    with pytest.raises(DuplicateVote, match="already has a vote"):
        store.record(make_vote(outcome="b"))
    assert store.votes() == [first]


@pytest.mark.parametrize("bad, message", [
    (dict(outcome="maybe"), "not one of"),
    (dict(model_b="demo-base"), "two different models"),
    (dict(round_id=""), "round id"),
])
def test_invalid_votes_are_refused(bad, message):
    with pytest.raises(VoteError, match=message):
        make_vote(**bad)


def test_votes_survive_close_and_reopen(tmp_path):
    path = tmp_path / "v.db"
    saved = [VoteStore(path).record(make_vote(f"r{i}", outcome=o)) for i, o in enumerate(["a", "b", "tie", "both_bad"])]
    reopened = VoteStore(path)
    assert reopened.votes() == saved
    assert reopened.count() == 4


def test_vote_survives_sigkill_right_after_record_returns(tmp_path):
    # The child records a vote and kills itself with SIGKILL at once: no atexit, no close, no flush.
    path = tmp_path / "v.db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from serving.arena.votes import Vote, VoteStore
        VoteStore({str(path)!r}).record(Vote(round_id="killed", model_a="m1", model_b="m2", outcome="b",
            prompt="p", answer_a="x", answer_b="y", settings={{"seed": 1}}))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    votes = VoteStore(path).votes()
    assert [(v.round_id, v.outcome, v.settings) for v in votes] == [("killed", "b", {"seed": 1})]


def test_export_round_trips_through_csv_and_jsonl(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    for i, outcome in enumerate(["a", "b", "tie", "both_bad"]):
        store.record(make_vote(f"r{i}", outcome=outcome))
    votes = store.votes()
    assert from_csv(to_csv(votes)) == votes
    assert from_jsonl(to_jsonl(votes)) == votes
    assert to_csv(votes).splitlines()[0] == (
        "round_id,model_a,model_b,outcome,prompt,answer_a,answer_b,settings,created_at,anonymous")
    assert len(to_jsonl(votes).splitlines()) == 4


def test_arena_settings_read_the_environment(tmp_path):
    settings = ArenaSettings.from_env({"IRIS_VOTES_DB": str(tmp_path / "v.db"), "IRIS_ARENA_MAX_PROMPT_CHARS": "300",
                                       "IRIS_ARENA_BOOTSTRAP_ROUNDS": "50"})
    assert (settings.votes_db, settings.max_prompt_chars, settings.bootstrap_rounds) == (tmp_path / "v.db", 300, 50)
    assert ArenaSettings.from_env({}).votes_db.name == "votes.db"
    with pytest.raises(ValueError, match="max_prompt_chars"):
        ArenaSettings.from_env({"IRIS_ARENA_MAX_PROMPT_CHARS": "0"})
