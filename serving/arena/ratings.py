"""Leaderboard maths: Bradley-Terry ratings (ties count half), Elo, bootstrap intervals, win rates.

Input is a list of `Battle`s (model A, model B, outcome); output is plain numbers. A
"both bad" verdict counts as a tie in the ratings (neither answer was preferred) and is
reported separately. Knows nothing of SQLite or the UI.

Ratings are on the Elo scale: `1000 + 400 * log10(strength)`, strengths normalised to a
geometric mean of 1, so a 3:1 Bradley-Terry strength ratio is a gap of 400*log10(3) = 190.8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

BASE_RATING = 1000.0
SCALE = 400.0
# Score of model A for each outcome; model B gets 1 - score.
SCORE_A = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


class Battle(NamedTuple):
    """One judged comparison: which models sat on sides A and B and which side won."""

    model_a: str
    model_b: str
    outcome: str
    """"a" | "b" | "tie" | "both_bad"."""


@dataclass(frozen=True)
class Standing:
    """One leaderboard row."""

    model_id: str
    battles: int
    wins: int
    losses: int
    ties: int
    """Ties plus "both bad" verdicts."""
    win_rate: float
    """Wins / battles (a tie is not a win)."""
    rating: float
    """Bradley-Terry rating on the Elo scale."""
    ci_low: float
    ci_high: float
    """95% bootstrap interval of `rating`."""
    elo: float
    """Online Elo rating after replaying the battles in order."""


def _models(battles: Sequence[Battle]) -> list[str]:
    return sorted({m for b in battles for m in (b.model_a, b.model_b)})


class _Tally(NamedTuple):
    """Distinct (i, j, score-of-i) battle kinds with how often each occurred: bootstrap resamples counts."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    count: np.ndarray


def _tally(battles: Sequence[Battle], index: dict[str, int]) -> _Tally:
    kinds: dict[tuple[int, int, float], int] = {}
    for b in battles:
        key = (index[b.model_a], index[b.model_b], SCORE_A[b.outcome])
        kinds[key] = kinds.get(key, 0) + 1
    keys = list(kinds)
    return _Tally(i=np.array([k[0] for k in keys], dtype=int), j=np.array([k[1] for k in keys], dtype=int),
                  score=np.array([k[2] for k in keys], dtype=float), count=np.array(list(kinds.values()), dtype=float))


def _score_matrix(tally: _Tally, n: int, counts: np.ndarray | None = None) -> np.ndarray:
    """W[i, j] = points model i took from model j (a win 1, a tie 0.5)."""
    counts = tally.count if counts is None else counts
    wins = np.zeros((n, n))
    np.add.at(wins, (tally.i, tally.j), counts * tally.score)
    np.add.at(wins, (tally.j, tally.i), counts * (1.0 - tally.score))
    return wins


def _fit_strengths(wins: np.ndarray, prior: float, tol: float = 1e-10, max_iter: int = 5000) -> np.ndarray:
    """Bradley-Terry MLE by Hunter's MM iteration: p_i <- W_i / sum_j N_ij / (p_i + p_j)."""
    n = len(wins)
    # `prior` virtual games per pair, split as a tie: keeps unbeaten models finite and
    # ties disconnected groups of models to a common scale.
    wins = wins + (prior / 2.0) * (1.0 - np.eye(n))
    games, points = wins + wins.T, wins.sum(axis=1)
    p = np.ones(n)
    for _ in range(max_iter):
        new = points / (games / (p[:, None] + p[None, :])).sum(axis=1)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p) / p) < tol:
            return new
        p = new
    return p


def _to_ratings(names: Sequence[str], strengths: np.ndarray) -> dict[str, float]:
    return {m: BASE_RATING + SCALE * float(np.log10(p)) for m, p in zip(names, strengths)}


def bradley_terry(battles: Sequence[Battle], prior: float = 1.0) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings (Elo scale) of every model in `battles`."""
    if not battles:
        return {}
    names = _models(battles)
    wins = _score_matrix(_tally(battles, {m: i for i, m in enumerate(names)}), len(names))
    points, games = wins.sum(axis=1), (wins + wins.T).sum(axis=1)
    if prior <= 0 and np.any((points == 0) | (points == games)):
        raise ValueError("with prior=0 every model needs some points and some losses, else its MLE is infinite")
    return _to_ratings(names, _fit_strengths(wins, prior))


def elo(battles: Sequence[Battle], k: float = 32.0) -> dict[str, float]:
    """Online Elo: replay battles in order; expected score E_a = 1 / (1 + 10^((R_b - R_a) / 400))."""
    ratings = {m: BASE_RATING for m in _models(battles)}
    for b in battles:
        ra, rb = ratings[b.model_a], ratings[b.model_b]
        expected_a = 1.0 / (1.0 + 10.0 ** ((rb - ra) / SCALE))
        delta = k * (SCORE_A[b.outcome] - expected_a)
        ratings[b.model_a], ratings[b.model_b] = ra + delta, rb - delta
    return ratings


def bootstrap_intervals(
    battles: Sequence[Battle], n_boot: int = 200, seed: int = 0, prior: float = 1.0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile interval of each model's Bradley-Terry rating over `n_boot` resamples of the battles."""
    if not battles:
        return {}
    names = _models(battles)
    tally = _tally(battles, {m: i for i, m in enumerate(names)})
    rng = np.random.default_rng(seed)
    # Resampling N battles with replacement = multinomial counts over the distinct battle kinds.
    resampled = rng.multinomial(len(battles), tally.count / tally.count.sum(), size=n_boot)
    samples = np.array([list(_to_ratings(names, _fit_strengths(_score_matrix(tally, len(names), c), prior)).values())
                        for c in resampled])
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=0)
    return {m: (float(lo), float(hi)) for m, lo, hi in zip(names, low, high)}


def _record(battles: Sequence[Battle], model: str) -> tuple[int, int, int]:
    wins = losses = ties = 0
    for b in battles:
        if model not in (b.model_a, b.model_b):
            continue
        score = SCORE_A[b.outcome] if model == b.model_a else 1.0 - SCORE_A[b.outcome]
        wins, losses, ties = wins + (score == 1.0), losses + (score == 0.0), ties + (score == 0.5)
    return wins, losses, ties


def leaderboard(battles: Sequence[Battle], n_boot: int = 200, seed: int = 0, prior: float = 1.0) -> list[Standing]:
    """One row per model, best Bradley-Terry rating first."""
    if not battles:
        return []
    ratings, elos = bradley_terry(battles, prior=prior), elo(battles)
    intervals = bootstrap_intervals(battles, n_boot=n_boot, seed=seed, prior=prior)
    rows = []
    for m in ratings:
        wins, losses, ties = _record(battles, m)
        n = wins + losses + ties
        low, high = intervals[m]
        rows.append(Standing(m, n, wins, losses, ties, wins / n, ratings[m], low, high, elos[m]))
    return sorted(rows, key=lambda s: -s.rating)
