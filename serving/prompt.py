"""Prompt token ids from a chat template, with message text kept out of the control-token space.

A chat template's own markers (`<|start_header_id|>`, `<|im_start|>`, the BOS text) must become
control tokens, but the text inside a message must not: a visitor who types `<|eot_id|>` gets
those characters, never the token. So the prompt is rendered twice, once as is and once with
every message's content replaced by a unique sentinel; the sentinel render gives the template's
own pieces, the real render tells how the template wrote each content (some templates `trim`).
Template pieces are tokenized with special tokens parsed, content pieces as plain text.

This is the one path from messages to token ids: the engine and the training eval stage both
call `prompt_tokens`, so the app and the eval send identical ids. Pure: rendering and
tokenizing are functions passed in; nothing here imports llama.cpp or Gradio.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

Messages = list[dict]
Render = Callable[[Messages], str]
"""Messages -> the full prompt text (generation prompt included)."""
Tokenize = Callable[[str, bool], list[int]]
"""(text, parse_special) -> token ids, never adding BOS itself."""
# How a template may have written a content it was given (Llama 3 templates `| trim` every message).
_REWRITES: tuple[Callable[[str], str], ...] = (lambda s: s, str.strip, str.rstrip, str.lstrip)


class TemplateError(ValueError):
    """The template rewrites message content in a way that cannot be told apart from its own text."""


@dataclass(frozen=True)
class Piece:
    text: str
    template: bool
    """True: the template's own text (control tokens allowed); False: message content (plain text)."""


def split_prompt(render: Render, messages: Messages) -> list[Piece]:
    """The rendered prompt as alternating template and content pieces; their texts join to `render(messages)`."""
    nonce = uuid.uuid4().hex
    marks = [f"\ue000{nonce}:{i}\ue001" for i in range(len(messages))]  # private-use: no template trims them
    skeleton = render([{**m, "content": mark} for m, mark in zip(messages, marks)])
    parts = re.split(f"\ue000{nonce}:(\\d+)\ue001", skeleton)  # template, index, template, index, ..., template
    real = render(messages)
    pieces, pos = [], 0
    for i in range(0, len(parts) - 1, 2):
        pos = _expect(real, pos, parts[i])
        content = _content_at(real, pos, messages[int(parts[i + 1])]["content"], parts[i + 2])
        pieces += [Piece(parts[i], True), Piece(content, False)]
        pos += len(content)
    pos = _expect(real, pos, parts[-1])
    if pos != len(real):
        raise TemplateError("the rendered prompt has text the template skeleton does not explain")
    return [p for p in [*pieces, Piece(parts[-1], True)] if p.text]


def _expect(real: str, pos: int, text: str) -> int:
    if not real.startswith(text, pos):
        raise TemplateError(f"template text {text[:40]!r} not found where expected in the rendered prompt")
    return pos + len(text)


def _content_at(real: str, pos: int, content: str, following: str) -> str:
    """How the template wrote `content` at `pos`: the rewrite that is followed by the template's next text."""
    for rewrite in _REWRITES:
        text = rewrite(content)
        if real.startswith(text + following, pos):
            return text
    raise TemplateError("the template rewrites message content beyond trimming whitespace")


def glue_whitespace(pieces: list[Piece]) -> list[Piece]:
    """Pieces with the template's whitespace next to a content moved into that content.

    A tokenizer splits at control tokens anyway, but not between "\n" and "  Hi": tokenizing the
    template's "<|im_start|>user\n" apart from the content "  Hi" would give other ids than the
    whole prompt. Whitespace holds no control token, so it may join the plain-text side.
    """
    texts, kinds = [p.text for p in pieces], [p.template for p in pieces]
    for i, template in enumerate(kinds):
        if not template:
            continue
        if i > 0 and not kinds[i - 1]:
            rest = texts[i].lstrip()
            texts[i - 1], texts[i] = texts[i - 1] + texts[i][: len(texts[i]) - len(rest)], rest
        if i + 1 < len(kinds) and not kinds[i + 1]:
            rest = texts[i].rstrip()
            texts[i + 1], texts[i] = texts[i][len(rest):] + texts[i + 1], rest
    return [Piece(text, template) for text, template in zip(texts, kinds) if text]


def prompt_tokens(render: Render, messages: Messages, tokenize: Tokenize) -> list[int]:
    """Token ids of `messages` rendered by `render`: template text with control tokens, content as plain text."""
    ids: list[int] = []
    for piece in glue_whitespace(split_prompt(render, messages)):
        ids += tokenize(piece.text, piece.template)
    return ids
