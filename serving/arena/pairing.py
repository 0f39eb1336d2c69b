"""Which two models meet: the default side-by-side pair, random blind-battle pairs, battle rounds.

Pure functions over the registry and the ids the engine reports as available; they
never load a model. A pair is always two different registry ids. A `BattleRound` holds
one blind round and turns the visitor's verdict into a `Vote` (storing it is `votes.py`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from serving.arena.votes import DuplicateVote, Vote, VoteError
from serving.generation import GenerationSettings
from serving.registry import Registry

# Kinds in the order we prefer for the default pair: a real fine-tune before the offline demo.
_PREFERRED_KINDS = ("fine-tuned", "demo")
# Blind rounds run with these settings and no system prompt, whatever the page's sliders say, so every vote
# compares the models under the same conditions.
BATTLE_SETTINGS = GenerationSettings(temperature=0.7, top_p=0.9, top_k=40, max_new_tokens=256, repeat_penalty=1.1)


class PairingError(ValueError):
    """Two different available models cannot be found."""


def _distinct(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def default_pair(registry: Registry, available: Sequence[str]) -> tuple[str, str]:
    """The registry's first default compare pair that is available, else a fine-tune and its registered
    base, else the first two available ids."""
    ready = set(available)
    for pair in registry.defaults.compare:
        if set(pair) <= ready:
            return pair
    for kind in _PREFERRED_KINDS:
        for entry in registry.models.values():
            if entry.kind == kind and entry.base_model and {entry.id, entry.base_model} <= ready:
                return entry.id, entry.base_model
    ids = _distinct(available)
    if len(ids) < 2:
        raise PairingError(f"comparing needs two available models; available: {', '.join(ids) or 'none'}")
    return ids[0], ids[1]


def battle_pair(available: Sequence[str], rng: random.Random) -> tuple[str, str]:
    """Two different models drawn uniformly at random, in random order (A/B sides included)."""
    ids = _distinct(available)
    if len(ids) < 2:
        raise PairingError(f"a battle needs two available models; available: {', '.join(ids) or 'none'}")
    first, second = rng.sample(ids, 2)
    return first, second


@dataclass(frozen=True)
class BattleRound:
    """One blind round: a hidden pair, the prompt both answered, and whether it was voted on."""

    models: tuple[str, str]
    round_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    prompt: str = ""
    answers: tuple[str, str] = ("", "")
    settings: dict = field(default_factory=dict)
    voted: bool = False
    anonymous: bool = True
    """False once an answer named a model or its maker: the vote is then stored but not counted."""

    def answered(self, prompt: str, answers: tuple[str, str], settings: dict, anonymous: bool = True) -> "BattleRound":
        return replace(self, prompt=prompt, answers=answers, settings=settings, anonymous=anonymous)

    def vote(self, outcome: str) -> Vote:
        """The vote to store; refused before both answers exist or after this round's vote."""
        if self.voted:
            raise DuplicateVote("You already voted on this round; start a new round.")
        if not self.prompt:
            raise VoteError("Ask a prompt and wait for both answers before voting.")
        return Vote(round_id=self.round_id, model_a=self.models[0], model_b=self.models[1], outcome=outcome,
                    prompt=self.prompt, answer_a=self.answers[0], answer_b=self.answers[1], settings=self.settings,
                    anonymous=self.anonymous)


def new_round(available: Sequence[str], rng: random.Random) -> BattleRound:
    return BattleRound(models=battle_pair(available, rng))


def battle_settings(rng: random.Random) -> GenerationSettings:
    """The server's sampling for a blind round, with a seed drawn here: a visitor cannot steer either side."""
    return BATTLE_SETTINGS.merged(seed=rng.randrange(2**31))
