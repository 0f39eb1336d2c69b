"""Plain text for language-model training: a .txt file (one example per non-empty line) or
records with a `text` field. Used by the demo base model's recipe."""

from __future__ import annotations

from typing import Any

from training.data.common import AdapterSpec, Example, SourceReport, text_field


def convert(record: dict, options: dict[str, Any], report: SourceReport) -> Example:
    return {"text": text_field(record, "text").strip()}


ADAPTER = AdapterSpec(
    name="text", convert=convert, required_keys=("text",),
    description="a .txt file or JSON lines with a 'text' string",
)
OPTIONS: tuple[str, ...] = ()
