"""ShareGPT records (FineTome-100k): `conversations` as [{"from", "value"}], optional `score`.

Maps the roles human/gpt/system to user/assistant/system; option `min_score` leaves out rows
whose `score` is lower (rows without a score are bad when the option is set).
"""

from __future__ import annotations

from typing import Any

from training.data.common import AdapterSpec, BadRow, Example, Filtered, SourceReport, check_messages

ROLE_MAP = {"human": "user", "gpt": "assistant", "system": "system"}


def _turn(index: int, turn: Any) -> dict[str, str]:
    if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
        raise BadRow(f"missing field: turn {index + 1} needs 'from' and 'value'")
    if turn["from"] not in ROLE_MAP:
        raise BadRow(f"wrong role: turn {index + 1} is from {turn['from']!r}, expected one of {sorted(ROLE_MAP)}")
    return {"role": ROLE_MAP[turn["from"]], "content": turn["value"] if isinstance(turn["value"], str) else ""}


def _check_score(record: dict, min_score: float | None) -> None:
    if min_score is None:
        return
    score = record.get("score")
    if not isinstance(score, (int, float)):
        raise BadRow(f"missing field: 'score' (needed by option min_score={min_score})")
    if score < min_score:
        raise Filtered(f"score < {min_score}")


def convert(record: dict, options: dict[str, Any], report: SourceReport) -> Example:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise BadRow("missing field: 'conversations' must be a non-empty list")
    _check_score(record, options.get("min_score"))
    return {"messages": check_messages([_turn(i, t) for i, t in enumerate(turns)])}


ADAPTER = AdapterSpec(
    name="sharegpt", convert=convert, required_keys=("conversations",),
    description="JSON objects with 'conversations': [{'from': 'human'|'gpt'|'system', 'value': str}, ...]",
)
OPTIONS = ("min_score",)
