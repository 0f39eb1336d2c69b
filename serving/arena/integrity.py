"""Keeping blind-arena votes honest: rate limits per visitor, and votes whose answers reveal a model not counted.

Following FastChat's arena: a vote on a round where either answer names a model, its maker or its
family ("As Llama, made by Meta, ...") is stored but left out of the ratings, because the voter may
have known who was who. `VoteLimiter` keeps a sliding window of vote times per key (a session, an IP
address), with the clock passed in so it is testable. Pure Python; knows nothing of Gradio.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from serving.arena.votes import VoteError

# Names that identify a model's family or maker (FastChat's list, plus the families Iris serves).
IDENTITY_WORDS = ("gpt", "chatgpt", "openai", "claude", "anthropic", "llama", "meta ai", "meta", "mistral",
                  "mixtral", "gemini", "gemma", "google", "qwen", "alibaba", "smollm", "hugging face", "huggingface",
                  "microsoft", "vicuna", "lmsys", "deepseek")
_MAX_KEYS = 10_000  # visitors remembered at once; the least recently seen are forgotten first


def reveals_identity(texts: Iterable[str], model_names: Iterable[str]) -> bool:
    """True when any text names a model (its id or display name) or a word in `IDENTITY_WORDS`."""
    names = {n.strip().lower() for n in model_names if n and n.strip()} | set(IDENTITY_WORDS)
    pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                         + r")(?![a-z0-9])")
    return any(pattern.search(text.lower()) for text in texts)


class TooManyVotes(VoteError):
    """A visitor voted more often than the limit allows."""


class VoteLimiter:
    """At most `limit` votes per key within `window_s` seconds (keys: a session id, an IP address)."""

    def __init__(self, limits: dict[str, int], window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limits, self.window_s, self.clock = limits, window_s, clock
        self._times: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def allow(self, keys: dict[str, str]) -> None:
        """Count one vote for each `kind: key`, or raise TooManyVotes (counting nothing) if one is over its limit."""
        now = self.clock()
        windows = {(kind, key): self._window((kind, key), now) for kind, key in keys.items() if key}
        for (kind, _), times in windows.items():
            if len(times) >= self.limits[kind]:
                wait = int(self.window_s - (now - times[0])) + 1
                raise TooManyVotes(f"Too many votes from this {kind}: the limit is {self.limits[kind]} per "
                                   f"{self.window_s / 60:g} minutes. Please try again in {wait} seconds.")
        for times in windows.values():
            times.append(now)

    def _window(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._times.pop(key, None) or deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        self._times[key] = times
        while len(self._times) > _MAX_KEYS:
            self._times.popitem(last=False)
        return times
