"""Training data: one adapter per source format, shared reading/cleaning/splitting in `common`.

`prepare_source(spec, ...)` turns one recipe dataset entry into deterministic train/test
example lists (chat `messages` or plain `text`) plus a report of what was dropped and why.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data import bitext, chat_jsonl, exam, sharegpt, text
from training.data.common import (
    AdapterSpec, DataFormatError, Example, SourceReport, convert_source, dedupe, filter_length, read_records,
)

ADAPTERS: dict[str, AdapterSpec] = {m.ADAPTER.name: m.ADAPTER for m in (sharegpt, bitext, exam, chat_jsonl, text)}
ADAPTER_OPTIONS: dict[str, tuple[str, ...]] = {m.ADAPTER.name: m.OPTIONS for m in (sharegpt, bitext, exam, chat_jsonl, text)}

__all__ = ["ADAPTERS", "DataFormatError", "Example", "SourceReport", "Split", "prepare_source", "split_examples"]


@dataclass(frozen=True)
class Split:
    """Deterministic train/test examples of one source."""

    train: list[Example]
    test: list[Example]


def adapter_for(format_name: str, options: dict[str, Any]) -> AdapterSpec:
    if format_name not in ADAPTERS:
        raise DataFormatError(f"unknown dataset format {format_name!r}; known: {', '.join(ADAPTERS)}")
    unknown = sorted(set(options) - set(ADAPTER_OPTIONS[format_name]))
    if unknown:
        allowed = ", ".join(ADAPTER_OPTIONS[format_name]) or "none"
        raise DataFormatError(f"format {format_name!r}: unknown option(s) {unknown}; allowed: {allowed}")
    return ADAPTERS[format_name]


def split_examples(examples: list[Example], test_size: float, seed: int) -> Split:
    """Shuffle with `seed` and hold out round(n * test_size) examples (at least 1 when test_size > 0)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(examples) * test_size)) if test_size > 0 and len(examples) > 1 else 0
    shuffled = [examples[i] for i in order]
    return Split(train=shuffled[n_test:], test=shuffled[:n_test])


def prepare_source(
    spec: Any, root: Path, seed: int, count_tokens: Callable[[Example], int], max_tokens: int | None,
    strict: bool = False,
) -> tuple[Split, SourceReport]:
    """Read, convert, dedupe, cap to `spec.rows`, length-filter and split one `DatasetSpec`."""
    adapter = adapter_for(spec.format, spec.options)
    report = SourceReport(source=spec.path)
    from serving.progress import ProgressBar

    records = ProgressBar(read_records(spec.path, spec.split, root), desc=f"reading {spec.path}", unit=" rows", leave=False)
    examples = convert_source(records, adapter, spec.options, report, strict=strict)
    examples, report.notes["duplicates_dropped"] = dedupe(examples)
    random.Random(seed).shuffle(examples)
    if spec.rows is not None:
        examples = examples[: spec.rows]
    if max_tokens is not None:
        examples, report.notes["too_long_dropped"] = filter_length(examples, count_tokens, max_tokens)
    if not examples:
        raise DataFormatError(f"{spec.path}: no usable rows left ({report.as_dict()})")
    report.kept = len(examples)
    if spec.test_path:  # a held-out file of its own (e.g. unseen phrasings): every row of `path` trains
        held_report = SourceReport(source=spec.test_path)
        held = convert_source(read_records(spec.test_path, spec.split, root), adapter, spec.options, held_report, strict)
        report.notes["test_file_rows"] = len(held)
        return Split(train=examples, test=held), report
    return split_examples(examples, spec.test_size, seed), report
