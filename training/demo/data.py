"""Turn the bundled demo files into token blocks for training and evaluation.

Reads chat JSONL / plain text, renders chats with the tokenizer's Llama 3.2 chat template
(fixed `date_string`, so the bytes never depend on the day), marks assistant tokens for
assistant-only loss, and packs examples into fixed-length blocks. Knows nothing of models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from serving.config import TEMPLATE_DATE

IGNORE = -100  # label value the loss skips (transformers' convention)


@dataclass(frozen=True)
class Example:
    """One tokenized training example; `labels` is `IGNORE` where no loss is taken."""

    input_ids: list[int]
    labels: list[int]


def read_chat_jsonl(path: Path) -> list[list[dict]]:
    """The `messages` lists of a chat JSONL file; a malformed line names file and line."""
    chats = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: not a chat record with a 'messages' list ({err})") from None
        chats.append(messages)
    return chats


def read_paragraphs(path: Path) -> list[str]:
    """Blank-line separated paragraphs of a plain-text file."""
    return [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, date_string=TEMPLATE_DATE
    )


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans of each assistant reply (content plus `<|eot_id|>`)."""
    text = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(render(tokenizer, messages[: i + 1]))
        if not text.startswith(render(tokenizer, messages[: i + 1])):
            raise ValueError("chat template is not prefix-stable; cannot locate assistant turns")
        spans.append((start, end))
    return text, spans


def chat_example(tokenizer, messages: list[dict], assistant_only: bool) -> Example:
    """Tokenize one chat; with `assistant_only`, only assistant reply tokens carry labels."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    if not assistant_only:
        return Example(ids, list(ids))
    labels = [tok if any(a <= s < b for a, b in spans) else IGNORE
              for tok, (s, _) in zip(ids, encoded["offset_mapping"])]
    return Example(ids, labels)


def text_example(tokenizer, paragraph: str) -> Example:
    """A plain paragraph framed like a document: `<|begin_of_text|>` ... `<|end_of_text|>`."""
    ids = tokenizer(paragraph, add_special_tokens=True)["input_ids"]
    ids = ids + [tokenizer.convert_tokens_to_ids("<|end_of_text|>")]
    return Example(ids, list(ids))


def concat_blocks(examples: Iterable[Example], block: int) -> Iterator[Example]:
    """Concatenate every example and cut the stream into `block`-token blocks (pretraining: no padding)."""
    ids: list[int] = []
    labels: list[int] = []
    for ex in examples:
        ids += ex.input_ids
        labels += ex.labels
        while len(ids) >= block:
            yield Example(ids[:block], labels[:block])
            ids, labels = ids[block:], labels[block:]


def pack(examples: Iterable[Example], block: int, pad_id: int) -> list[Example]:
    """First-fit-decreasing packing of whole examples (cut to `block`) into padded `block`-token blocks.

    Used for fine-tuning, where a dialogue must not be split from its context; sorting by length
    first keeps padding small. Ties keep input order, so the result is deterministic.
    """
    bins: list[Example] = []
    for ex in sorted(examples, key=lambda e: -len(e.input_ids)):
        ids, labels = ex.input_ids[:block], ex.labels[:block]
        target = next((b for b in bins if len(b.input_ids) + len(ids) <= block), None)
        if target is None:
            bins.append(Example(list(ids), list(labels)))
        else:
            target.input_ids.extend(ids)
            target.labels.extend(labels)
    return [Example(b.input_ids + [pad_id] * (block - len(b.input_ids)),
                    b.labels + [IGNORE] * (block - len(b.labels))) for b in bins]
