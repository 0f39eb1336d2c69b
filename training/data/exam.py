"""Exam-prep chat JSONL (user question, assistant answer) with leaked meta-instructions removed.

Earlier generated answers sometimes start or end with the instruction the writer was given
("Briefly compare X and Y.", "Relate it to everyday life.") instead of only answering. Those
sentences are stripped from the start and end of assistant turns, and lines made only of such an
instruction are removed anywhere; the count goes into the data report. The questions leaked them too ("What is
osmosis? Relate it to everyday life."): user turns are cleaned the same way, except that a question made only of
instructions keeps its first sentence, which is the question itself ("Briefly explain osmosis."); counted apart.
"""

from __future__ import annotations

import re
from typing import Any

from training.data.chat_jsonl import read_messages
from training.data.common import AdapterSpec, BadRow, Example, SourceReport, check_messages

META = re.compile(
    r"^\W*(?:"
    r"briefly (?:compare|contrast|explain|describe|define|summari[sz]e|discuss|mention|outline|state)"
    r"|relate (?:it|this|them|these|your answer) to"
    r"|compare (?:it|this|them) (?:to|with)"
    r"|(?:give|use|add|include) (?:a|an|one|two) (?:short |brief |concrete |real-world )?examples?"
    r"|keep (?:it|the answer|your answer) (?:short|brief|concise|under)"
    r"|answer in (?:one|two|three|a few|\d+)"
    r"|(?:in|using) (?:one|two|three|\d+) sentences?"
    r"|end with (?:a|an|one)"
    r"|mention (?:one|two|a|an) "
    r")",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")
NOTE = "meta_instructions_stripped"
QUESTION_NOTE = "meta_instructions_stripped_from_questions"


def _strip_ends(sentences: list[str]) -> tuple[list[str], int]:
    removed = 0
    while sentences and META.match(sentences[0]):
        sentences, removed = sentences[1:], removed + 1
    while sentences and META.match(sentences[-1]):
        sentences, removed = sentences[:-1], removed + 1
    return sentences, removed


def strip_meta(answer: str) -> tuple[str, int]:
    """The answer without leaked meta-instructions, and how many were removed."""
    lines = answer.strip().split("\n")
    kept_lines = [line for line in lines if not (META.match(line) and len(_SENTENCE_END.split(line.strip())) == 1)]
    removed = len(lines) - len(kept_lines)
    text = "\n".join(kept_lines).strip()
    first, sep, rest = text.partition("\n")
    head, n_head = _strip_ends(_SENTENCE_END.split(first))
    text = (" ".join(head) + sep + rest).strip()
    head_end, sep, last = text.rpartition("\n")
    tail, n_tail = _strip_ends(_SENTENCE_END.split(last))
    return (head_end + sep + " ".join(tail)).strip(), removed + n_head + n_tail


def strip_meta_question(question: str) -> tuple[str, int]:
    """The question without leaked meta-instructions, and how many were removed; when every sentence is one,
    the first is the question and stays."""
    text, removed = strip_meta(question)
    if text:
        return text, removed
    sentences = _SENTENCE_END.split(question.strip())
    return sentences[0], len(sentences) - 1


def convert(record: dict, options: dict[str, Any], report: SourceReport) -> Example:
    messages = read_messages(record)
    for message in messages:
        if message["role"] == "user" and isinstance(message["content"], str):
            message["content"], removed = strip_meta_question(message["content"])
            report.notes[QUESTION_NOTE] += removed
        if message["role"] == "assistant" and isinstance(message["content"], str):
            message["content"], removed = strip_meta(message["content"])
            report.notes[NOTE] += removed
            if not message["content"]:
                raise BadRow("empty turn: the answer was only meta-instructions")
    return {"messages": check_messages(messages)}


ADAPTER = AdapterSpec(
    name="exam_jsonl", convert=convert, required_keys=("messages",),
    description="JSON lines with 'messages': [{'role': 'user', ...}, {'role': 'assistant', ...}]",
)
OPTIONS: tuple[str, ...] = ()
