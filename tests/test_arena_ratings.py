"""Ratings on vote sets whose values are worked out by hand in the comments."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from serving.arena.ratings import Battle, bootstrap_intervals, bradley_terry, elo, leaderboard

A_WINS_3_1 = [Battle("x", "y", "a")] * 3 + [Battle("x", "y", "b")]


def gap(ratings, a, b):
    return ratings[a] - ratings[b]


def test_bradley_terry_3_1_record_gives_strength_ratio_3():
    # MLE with 2 models: p_x / (p_x + p_y) = 3/4  ->  p_x / p_y = 3.
    # Elo scale: gap = 400 * log10(3) = 190.849; mean stays 1000 -> 1095.42 / 904.58.
    r = bradley_terry(A_WINS_3_1, prior=0)
    assert 10 ** (gap(r, "x", "y") / 400) == pytest.approx(3.0, rel=1e-8)
    assert r["x"] == pytest.approx(1095.424, abs=1e-3)
    assert r["y"] == pytest.approx(904.576, abs=1e-3)


def test_bradley_terry_prior_adds_one_virtual_tie_per_pair():
    # prior=1: one extra game split 0.5/0.5 -> x has 3.5 of 5 points -> ratio 3.5/1.5 = 7/3.
    r = bradley_terry(A_WINS_3_1, prior=1.0)
    assert 10 ** (gap(r, "x", "y") / 400) == pytest.approx(7 / 3, rel=1e-8)


def test_ties_and_both_bad_count_half():
    # x: 1 win + 2 ties (0.5 each) = 2 points of 3; y: 1 point -> ratio 2.
    battles = [Battle("x", "y", "a"), Battle("x", "y", "tie"), Battle("y", "x", "both_bad")]
    r = bradley_terry(battles, prior=0)
    assert 10 ** (gap(r, "x", "y") / 400) == pytest.approx(2.0, rel=1e-8)


def test_side_does_not_matter():
    # The same results with sides swapped give the same ratings.
    swapped = [Battle("y", "x", "b")] * 3 + [Battle("y", "x", "a")]
    assert bradley_terry(swapped, prior=0) == pytest.approx(bradley_terry(A_WINS_3_1, prior=0))


def test_bradley_terry_solves_the_likelihood_equations_on_a_random_league():
    # At the MLE each model's points equal its expected points: W_i = sum_j N_ij * p_i / (p_i + p_j).
    rng = random.Random(3)
    models = ["a", "b", "c", "d"]
    true = {"a": 4.0, "b": 2.0, "c": 1.0, "d": 0.5}
    battles = []
    for _ in range(400):
        m, n = rng.sample(models, 2)
        battles.append(Battle(m, n, "a" if rng.random() < true[m] / (true[m] + true[n]) else "b"))
    r = bradley_terry(battles, prior=0)
    p = {m: 10 ** ((r[m] - 1000) / 400) for m in models}
    for m in models:
        points = sum((b.outcome == "a") if b.model_a == m else (b.outcome == "b") for b in battles if m in b[:2])
        expected = sum(p[m] / (p[m] + p[b.model_b if b.model_a == m else b.model_a]) for b in battles if m in b[:2])
        assert points == pytest.approx(expected, rel=1e-6)
    assert sorted(models, key=r.get, reverse=True) == models
    assert np.mean(list(r.values())) == pytest.approx(1000.0)


def test_unbeaten_model_needs_the_prior():
    with pytest.raises(ValueError, match="MLE is infinite"):
        bradley_terry([Battle("x", "y", "a")], prior=0)
    assert math.isfinite(bradley_terry([Battle("x", "y", "a")])["x"])


def test_elo_updates_by_the_formula():
    # Both start at 1000, K=32. Game 1, x wins: E_x = 0.5 -> x = 1016, y = 984.
    # Game 2, y wins: E_y = 1 / (1 + 10^((1016 - 984) / 400)) = 1 / (1 + 1.202264) = 0.454079;
    # y += 32 * (1 - 0.454079) = 17.4695 -> y = 1001.4695, x = 998.5305.
    r = elo([Battle("x", "y", "a")])
    assert r == {"x": 1016.0, "y": 984.0}
    r = elo([Battle("x", "y", "a"), Battle("x", "y", "b")])
    assert r["y"] == pytest.approx(1001.4695, abs=1e-4)
    assert r["x"] == pytest.approx(998.5305, abs=1e-4)
    # A tie between equals changes nothing.
    assert elo([Battle("x", "y", "tie")]) == {"x": 1000.0, "y": 1000.0}


def test_bootstrap_interval_is_seeded_contains_the_estimate_and_shrinks_with_data():
    small = A_WINS_3_1 * 5
    big = A_WINS_3_1 * 100
    ci_small = bootstrap_intervals(small, n_boot=200, seed=1)
    assert ci_small == bootstrap_intervals(small, n_boot=200, seed=1)
    assert ci_small != bootstrap_intervals(small, n_boot=200, seed=2)
    ci_big = bootstrap_intervals(big, n_boot=200, seed=1)
    est = bradley_terry(big)
    for m in ("x", "y"):
        assert ci_big[m][0] <= est[m] <= ci_big[m][1]
        assert ci_big[m][1] - ci_big[m][0] < ci_small[m][1] - ci_small[m][0]


def test_leaderboard_counts_battles_and_win_rates():
    battles = A_WINS_3_1 + [Battle("z", "x", "tie"), Battle("y", "z", "both_bad"), Battle("z", "y", "a")]
    rows = {s.model_id: s for s in leaderboard(battles, n_boot=50, seed=0)}
    # x: 3 wins, 1 loss, 1 tie; y: 1 win, 3+1 losses, 1 both-bad; z: 1 win, 2 ties.
    assert (rows["x"].battles, rows["x"].wins, rows["x"].losses, rows["x"].ties) == (5, 3, 1, 1)
    assert (rows["y"].battles, rows["y"].wins, rows["y"].losses, rows["y"].ties) == (6, 1, 4, 1)
    assert (rows["z"].battles, rows["z"].wins, rows["z"].losses, rows["z"].ties) == (3, 1, 0, 2)
    assert rows["x"].win_rate == pytest.approx(3 / 5)
    ordered = [s.model_id for s in leaderboard(battles, n_boot=50, seed=0)]
    assert ordered[-1] == "y"
    assert leaderboard([]) == [] and bradley_terry([]) == {} and bootstrap_intervals([]) == {} and elo([]) == {}
