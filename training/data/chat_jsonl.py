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


# What a held-out row tells the support task metric (training/stages/task_metric.py): the facts its answer must
# state, what kind of question it is, and the persona whose context it is asked with.
EVAL_KEYS = {"facts": list, "kind": str, "persona": str}


def convert(record: dict, options: dict[str, Any], report: SourceReport) -> Example:
    kept = {key: record[key] for key, kind in EVAL_KEYS.items() if isinstance(record.get(key), kind)}
    return {"messages": check_messages(read_messages(record)), **kept}


ADAPTER = AdapterSpec(
    name="chat_jsonl", convert=convert, required_keys=("messages",),
    description="JSON lines with 'messages': [{'role': 'system'|'user'|'assistant', 'content': str}, ...]",
)
OPTIONS: tuple[str, ...] = ()
