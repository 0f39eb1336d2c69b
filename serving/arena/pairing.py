"""Which two models meet: the default side-by-side pair and random blind-battle pairs.

Pure functions over the registry and the ids the engine reports as available; they
never load a model. A pair is always two different registry ids.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from serving.registry import Registry

# Kinds in the order we prefer for the default pair: a real fine-tune before the offline demo.
_PREFERRED_KINDS = ("fine-tuned", "demo")


class PairingError(ValueError):
    """Two different available models cannot be found."""


def _distinct(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def default_pair(registry: Registry, available: Sequence[str]) -> tuple[str, str]:
    """A fine-tune and its registered base when both are available, else the first two available ids."""
    ready = set(available)
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
