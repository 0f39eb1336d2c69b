"""Chat JSONL records: {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}.

The format of Iris's bundled demo data; exam.py builds on it.
"""

from __future__ import annotations

from typing import Any

from training.data.common import AdapterSpec, BadRow, Example, SourceReport, check_messages


def read_messages(record: dict) -> list[dict[str, str]]:
    """The record's messages as role/content dicts, else BadRow naming what is missing."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRow("missing field: 'messages' must be a non-empty list")
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise BadRow(f"missing field: message {index + 1} needs 'role' and 'content'")
        turns.append({"role": message["role"], "content": message["content"]})
    return turns


def convert(record: dict, options: dict[str, Any], report: SourceReport) -> Example:
    facts = record.get("facts")  # what a held-out answer must state (training/stages/task_metric.py)
    return {"messages": check_messages(read_messages(record)), **({"facts": facts} if isinstance(facts, list) else {})}


ADAPTER = AdapterSpec(
    name="chat_jsonl", convert=convert, required_keys=("messages",),
    description="JSON lines with 'messages': [{'role': 'system'|'user'|'assistant', 'content': str}, ...]",
)
OPTIONS: tuple[str, ...] = ()
