"""Pairing: the default pair is a fine-tune with its base; battle pairs are never one model twice."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from serving.arena.pairing import PairingError, battle_pair, default_pair, new_round
from serving.arena.votes import DuplicateVote, VoteError


def test_default_pair_offline_is_the_demo_fine_tune_and_its_base(registry):
    assert default_pair(registry, ["demo-base", "demo-support"]) == ("demo-support", "demo-base")


def test_default_pair_prefers_a_real_fine_tune_when_it_and_its_base_are_available(registry):
    available = ["demo-base", "demo-support", "llama-3.2-1b-instruct", "llama-3.2-1b-support"]
    assert default_pair(registry, available) == ("llama-3.2-1b-support", "llama-3.2-1b-instruct")


def test_default_pair_skips_a_fine_tune_whose_base_is_missing(registry):
    # The 1B fine-tunes are available but their base is not: fall back to the demo pair.
    available = ["llama-3.2-1b-finetome", "demo-support", "demo-base"]
    assert default_pair(registry, available) == ("demo-support", "demo-base")


def test_default_pair_without_any_fine_tune_takes_two_available_models(registry):
    assert default_pair(registry, ["llama-3.2-3b-instruct", "llama-3.2-1b-instruct"]) == (
        "llama-3.2-3b-instruct", "llama-3.2-1b-instruct")


@pytest.mark.parametrize("available", [[], ["demo-base"], ["demo-base", "demo-base"]])
def test_pairing_needs_two_distinct_models(registry, available):
    with pytest.raises(PairingError, match="two available models"):
        default_pair(registry, available)
    with pytest.raises(PairingError, match="two available models"):
        battle_pair(available, random.Random(0))


def test_battle_pair_is_never_the_same_model_and_covers_every_ordered_pair():
    ids = ["m1", "m2", "m3", "m4", "m1"]  # a duplicate id must not make a self-pair possible
    rng = random.Random(1234)
    seen = set()
    for _ in range(2000):
        a, b = battle_pair(ids, rng)
        assert a != b
        seen.add((a, b))
    # 4 distinct models -> 12 ordered pairs; all show up, so sides are random too.
    assert len(seen) == 12


def test_battle_pair_with_two_models_always_returns_both():
    rng = random.Random(7)
    assert {frozenset(battle_pair(["x", "y"], rng)) for _ in range(50)} == {frozenset({"x", "y"})}


def test_battle_round_votes_once_and_only_after_both_answers():
    rnd = new_round(["m1", "m2", "m3"], random.Random(0))
    assert rnd.models[0] != rnd.models[1] and len(rnd.round_id) == 32
    with pytest.raises(VoteError, match="before voting"):
        rnd.vote("a")
    answered = rnd.answered("hi", ("hello", "hey"), {"seed": 3})
    vote = answered.vote("tie")
    assert (vote.round_id, vote.model_a, vote.model_b, vote.outcome) == (rnd.round_id, *rnd.models, "tie")
    assert (vote.prompt, vote.answer_a, vote.answer_b, vote.settings) == ("hi", "hello", "hey", {"seed": 3})
    with pytest.raises(DuplicateVote, match="already voted"):
        replace(answered, voted=True).vote("a")
    assert new_round(["m1", "m2"], random.Random(0)).round_id != rnd.round_id
