"""Blind-arena integrity: votes that reveal a model are not counted; votes are rate-limited per session and IP."""

import random
import sqlite3
from types import SimpleNamespace

import gradio as gr
import pytest

from serving.arena.integrity import TooManyVotes, VoteLimiter, reveals_identity
from serving.arena.pairing import BATTLE_SETTINGS, BattleRound, battle_settings
from serving.arena.votes import Vote, VoteStore


@pytest.mark.parametrize("answer, revealed", [
    ("I'm a large language model trained by Meta.", True),
    ("As LLaMA I cannot browse the web.", True),
    ("I am demo-support, here to help.", True),
    ("I am Demo base (tiny Llama, offline).", True),
    ("Your parcel ships today; the metadata is updated.", False),
    ("Llamas are camelids; the graphic shows a herd.", False),
    ("Refunds take five days.", False),
])
def test_answers_that_name_a_model_or_its_maker_are_flagged(answer, revealed):
    assert reveals_identity(["A neutral answer.", answer], ["demo-support", "Demo base (tiny Llama, offline)"]) \
        is revealed


def test_rounds_carry_their_anonymity_into_the_vote_and_only_anonymous_votes_count(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    rnd = BattleRound(("x", "y"))
    store.record(rnd.answered("Hi", ("a", "b"), {}).vote("a"))
    revealed = BattleRound(("x", "y")).answered("Who?", ("I am Llama", "b"), {}, anonymous=False).vote("b")
    store.record(revealed)
    assert [v.anonymous for v in store.votes()] == [True, False]
    assert [b.outcome for b in store.battles()] == ["a"]


def test_a_votes_file_from_before_the_anonymous_column_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, round_id TEXT NOT NULL UNIQUE, "
                     "model_a TEXT NOT NULL, model_b TEXT NOT NULL, outcome TEXT NOT NULL, prompt TEXT NOT NULL, "
                     "answer_a TEXT NOT NULL, answer_b TEXT NOT NULL, settings TEXT NOT NULL, "
                     "created_at TEXT NOT NULL)")
        conn.execute("INSERT INTO votes VALUES (1, 'r1', 'x', 'y', 'tie', 'p', 'a', 'b', '{}', '2026-01-01')")
    store = VoteStore(path)
    assert store.votes()[0].anonymous and len(store.battles()) == 1
    store.record(Vote("r2", "x", "y", "a", "p", "a", "b", {}, anonymous=False))
    assert len(store.battles()) == 1


def test_blind_rounds_use_the_servers_settings_with_a_fresh_seed():
    rng = random.Random(0)
    first, second = battle_settings(rng), battle_settings(rng)
    assert first.seed != second.seed
    assert first.model_dump(exclude={"seed"}) == BATTLE_SETTINGS.model_dump(exclude={"seed"})


def test_votes_are_limited_per_session_and_per_ip_in_a_sliding_window():
    now = [0.0]
    limiter = VoteLimiter({"session": 2, "IP address": 3}, window_s=60, clock=lambda: now[0])
    limiter.allow({"session": "s1", "IP address": "1.2.3.4"})
    limiter.allow({"session": "s1", "IP address": "1.2.3.4"})
    with pytest.raises(TooManyVotes, match="this session: the limit is 2 per 1 minutes. Please try again in 61"):
        limiter.allow({"session": "s1", "IP address": "1.2.3.4"})
    limiter.allow({"session": "s2", "IP address": "1.2.3.4"})  # the refused vote was not counted for the IP
    with pytest.raises(TooManyVotes, match="this IP address: the limit is 3"):
        limiter.allow({"session": "s3", "IP address": "1.2.3.4"})
    now[0] = 61.0
    limiter.allow({"session": "s1", "IP address": "1.2.3.4"})  # the window has moved on


def test_the_compare_page_refuses_votes_beyond_the_session_limit(registry, tmp_path):
    from pages.compare import ComparePage
    from serving.arena.settings import ArenaSettings
    from serving.config import ServingSettings
    from serving.engine import Engine
    from serving.personas import load_personas

    page = ComparePage(Engine(registry, ServingSettings(ram_budget_mb=64)), load_personas(),
                       ArenaSettings(votes_db=tmp_path / "v.db", votes_per_session=2))
    request = SimpleNamespace(session_hash="s1", client=SimpleNamespace(host="127.0.0.1"), headers={})
    for _ in range(2):
        page.vote("a", BattleRound(("demo-base", "demo-support")).answered("Hi", ("a", "b"), {}), request)
    with pytest.raises(gr.Error, match="Too many votes from this session"):
        page.vote("a", BattleRound(("demo-base", "demo-support")).answered("Hi", ("a", "b"), {}), request)
    assert page.store.count() == 2


def test_votes_are_keyed_by_the_forwarded_address_only_behind_a_trusted_proxy():
    from pages.compare import visitor_keys

    request = SimpleNamespace(session_hash="s1", client=SimpleNamespace(host="10.0.0.1"),
                              headers={"x-forwarded-for": "203.0.113.7, 10.0.0.1"})
    assert visitor_keys(request)["IP address"] == "10.0.0.1"  # a client could forge the header
    assert visitor_keys(request, trust_forwarded_for=True) == {"session": "s1", "IP address": "203.0.113.7"}
