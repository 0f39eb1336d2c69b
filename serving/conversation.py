"""Conversation helpers: pure functions over chat messages and generated text.

Two jobs: fit a history into the context window by dropping the oldest turns in chunks
(the system prompt and the latest message always stay), and keep chat-template tokens
(`<|eot_id|>`, `<|im_end|>`, ...) out of the text a visitor sees. Nothing here
knows llama.cpp: token counting is a function passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Messages = list[dict]
ROLES = ("system", "user", "assistant")
# Turns dropped at once when the history overflows: a chunk (not one turn per request)
# keeps the kept prefix stable for several turns, so llama.cpp's KV prefix reuse keeps hitting.
DROP_CHUNK = 4
# Any Llama 3 or ChatML style special token; turn-ending ones stop the answer, others are removed.
MARKER_RE = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>")
_TURN_END = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|begin_of_text|>",  # Llama 3
             "<|im_start|>", "<|im_end|>", "<|endoftext|>")  # ChatML (SmolLM2, Qwen)
_MAX_MARKER = 46  # longest text `MARKER_RE` can match


@dataclass(frozen=True)
class Trimmed:
    """A history cut to fit: the messages to send and how many turns were left out."""

    messages: Messages
    dropped: int


def split_system(messages: Messages) -> tuple[Messages, Messages]:
    """(leading system messages, the rest)."""
    n = 0
    while n < len(messages) and messages[n]["role"] == "system":
        n += 1
    return messages[:n], messages[n:]


def drop_oldest(messages: Messages, dropped: int) -> Trimmed:
    """`messages` without the `dropped` oldest non-system turns (the latest one always stays).

    The cut is moved forward to a user turn so the kept history never opens with an answer.
    """
    system, turns = split_system(messages)
    cut = _cut(turns, dropped)
    return Trimmed(system + turns[cut:], cut)


def _cut(turns: Messages, dropped: int) -> int:
    """Index of the first kept turn when `dropped` are left out, moved forward to a user turn."""
    cut = max(min(dropped, len(turns) - 1), 0)
    while 0 < cut < len(turns) - 1 and turns[cut]["role"] != "user":
        cut += 1
    return cut


def fit_history(messages: Messages, count_tokens: Callable[[Messages], int], budget: int,
                already_dropped: int = 0, chunk: int = DROP_CHUNK) -> Trimmed | None:
    """Drop the oldest turns, `chunk` at a time, until `count_tokens(kept) <= budget`.

    Starts from `already_dropped` so a conversation keeps its earlier cut (and its KV prefix).
    The cuts are the ones dropping a chunk at a time would visit; a binary search over them
    (fewer turns, fewer tokens) counts O(log n) renders, not one per chunk.
    Returns None when even the system prompt plus the latest message does not fit.
    """
    system, turns = split_system(messages)
    cuts = [_cut(turns, already_dropped)]
    while cuts[-1] < len(turns) - 1:
        cuts.append(_cut(turns, cuts[-1] + chunk))

    def fits(i: int) -> bool:
        return count_tokens(system + turns[cuts[i]:]) <= budget

    if fits(0):
        return Trimmed(system + turns[cuts[0]:], cuts[0])
    lo, hi = 0, len(cuts) - 1  # cuts[lo] does not fit; find the first that does in (lo, hi]
    if hi == 0 or not fits(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return Trimmed(system + turns[cuts[hi]:], cuts[hi])


def strip_template_tokens(text: str) -> str:
    """`text` with every chat-template token removed."""
    return MARKER_RE.sub("", text)


class LeakGuard:
    """Streaming filter: passes text through, stops at a turn-ending template token or a stop text.

    Text that could be the start of a template token (or of a stop text) is held back until it is
    known not to be one, so a token split across stream chunks never shows.
    """

    def __init__(self, stops: tuple[str, ...] = ()) -> None:
        self._pending = ""
        self._ends = _TURN_END + tuple(s for s in stops if s)
        self._stops = tuple(s for s in stops if s)
        self.stopped = False

    def feed(self, text: str) -> str:
        """Visible text from one more chunk; sets `stopped` once a turn-ending token appears."""
        if self.stopped:
            return ""
        self._pending += text
        end = min((self._pending.find(m) for m in self._ends if m in self._pending), default=-1)
        if end >= 0:
            self.stopped = True
            visible, self._pending = self._pending[:end], ""
            return strip_template_tokens(visible)
        visible = strip_template_tokens(self._pending)
        hold = max(_held_suffix(visible), _stop_prefix(visible, self._stops))
        self._pending = visible[len(visible) - hold:] if hold else ""
        return visible[: len(visible) - hold]

    def flush(self) -> str:
        """Whatever was held back at the end of the stream."""
        rest, self._pending = strip_template_tokens(self._pending), ""
        return "" if self.stopped else rest


def _stop_prefix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is the start of a stop text."""
    return max((n for stop in stops for n in range(min(len(stop) - 1, len(text)), 0, -1)
                if stop.startswith(text[len(text) - n:])), default=0)


def _held_suffix(text: str) -> int:
    """Length of the tail of `text` that might still grow into a template token."""
    start = text.rfind("<", max(0, len(text) - _MAX_MARKER))
    if start < 0:
        return 0
    tail = text[start:]
    return len(tail) if re.fullmatch(r"<(\|([A-Za-z0-9_]{0,40}(\|)?)?)?", tail) else 0


def validate_messages(messages: Messages, max_chars: int, max_messages: int, max_total_chars: int) -> str | None:
    """What is wrong with a message list, or None: size, roles, types, empty/oversize last user message.

    The whole history is bounded (count, then characters) before anything renders or tokenizes it.
    """
    if not isinstance(messages, list) or not messages:
        return "the conversation is empty: send at least one user message"
    if len(messages) > max_messages:
        return (f"the conversation has {len(messages)} messages; the limit is {max_messages}: "
                "clear the chat to start a new one")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"message #{i + 1} needs a role of {', '.join(ROLES)}"
        if not isinstance(message.get("content"), str):
            return f"message #{i + 1} needs text content"
        if not _encodable(message["content"]):
            return f"message #{i + 1} holds characters that are not valid text (such as a lone surrogate \\ud800)"
    total = sum(len(m["content"]) for m in messages)
    if total > max_total_chars:
        return (f"the conversation is {total} characters long; the limit is {max_total_chars}: "
                "clear the chat to start a new one")
    last = messages[-1]
    if last["role"] == "assistant" and len(messages) > 1 and last["content"].strip():
        return None  # an answer to continue (cut off by its token limit)
    if last["role"] != "user":
        return "the last message must be the user's (or a non-empty answer of the assistant to continue)"
    if not last["content"].strip():
        return "the message is empty: type a question first"
    if len(last["content"]) > max_chars:
        return f"the message is {len(last['content'])} characters long; the limit is {max_chars}"
    return None


def _encodable(text: str) -> bool:
    """False for text UTF-8 cannot encode (lone surrogates a JSON client may send), which no tokenizer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
