"""Shared data preparation: read rows (Hub id or local file), convert them with a format adapter,
report bad rows with their row/line numbers, dedupe, filter by token length and split
deterministically.

Adapters (sharegpt.py, bitext.py, ...) only turn one raw record into messages or text; everything
that is the same for every source lives here. Nothing here trains or tokenizes for training; the
token-length filter takes a `count_tokens` callable so this module never imports transformers.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
LINE_FILES = (".jsonl", ".txt")  # read line by line here, so bad lines keep their line numbers
DATASETS_FILES = {".json": "json", ".csv": "csv", ".parquet": "parquet"}

Example = dict[str, Any]  # {"messages": [{"role", "content"}, ...]} or {"text": str}


class DataFormatError(ValueError):
    """A source that is not the format its recipe declares, or bad rows under --strict."""


class BadRow(ValueError):
    """One raw record that cannot be used; the message says what is wrong with it."""


class Filtered(Exception):
    """A valid record that an adapter option leaves out on purpose (e.g. below `min_score`)."""


@dataclass
class SourceReport:
    """What happened to every row of one dataset source."""

    source: str
    read: int = 0
    kept: int = 0
    filtered: Counter = field(default_factory=Counter)
    bad: Counter = field(default_factory=Counter)
    bad_examples: list[str] = field(default_factory=list)
    """The first bad rows as 'row N: reason' (all of them are counted in `bad`)."""
    notes: Counter = field(default_factory=Counter)
    """Adapter-specific counts, e.g. stripped meta-instructions."""

    def add_bad(self, row: int, reason: str, keep_examples: int = 20) -> None:
        self.bad[reason.split(":")[0]] += 1
        if len(self.bad_examples) < keep_examples:
            self.bad_examples.append(f"row {row}: {reason}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "read": self.read, "kept": self.kept, "filtered": dict(self.filtered),
            "bad": dict(self.bad), "bad_total": sum(self.bad.values()), "bad_examples": self.bad_examples,
            "notes": dict(self.notes),
        }


# ---------------------------------------------------------------- reading


def resolve_local(path: str, root: Path) -> Path | None:
    """The local file a recipe path names, or None when it is a Hub dataset id."""
    candidate = Path(path) if Path(path).is_absolute() else root / path
    if candidate.exists():
        return candidate
    if Path(path).suffix in (*LINE_FILES, *DATASETS_FILES) or path.startswith((".", "/")):
        raise FileNotFoundError(f"dataset file not found: {candidate} (recipe path {path!r})")
    return None


def _read_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record or BadRow) for a .jsonl or .txt file."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield number, BadRow(f"not UTF-8: byte {err.start} of the line")
                continue
            if not line.strip():
                continue
            if path.suffix == ".txt":
                yield number, {"text": line.rstrip("\n")}
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                yield number, BadRow(f"not JSON: {err.msg} at column {err.colno}")


def _read_with_datasets(path: str, split: str, local: Path | None) -> Iterator[tuple[int, Any]]:
    from datasets import load_dataset

    if local is None:
        dataset = load_dataset(path, split=split)
    else:
        dataset = load_dataset(DATASETS_FILES[local.suffix], data_files=str(local), split="train")
    for number, record in enumerate(dataset, start=1):
        yield number, record


def read_records(path: str, split: str, root: Path) -> Iterator[tuple[int, Any]]:
    """(row number, record or BadRow) from a Hub dataset id or a local file.

    Local JSONL/text files are read line by line rather than through `datasets`, because pyarrow
    stops at the first undecodable or malformed line and loses line numbers; everything else
    (Hub ids, .json, .csv, .parquet) goes through `datasets.load_dataset`.
    """
    local = resolve_local(path, root)
    if local is not None and local.suffix in LINE_FILES:
        return _read_lines(local)
    if local is not None and local.suffix not in DATASETS_FILES:
        raise DataFormatError(f"{local}: unsupported file type {local.suffix!r}; use .jsonl, .txt, .json, .csv or .parquet")
    return _read_with_datasets(path, split, local)


# ---------------------------------------------------------------- checking


def text_field(record: dict, key: str) -> str:
    """A required non-empty string field of a raw record, else BadRow naming the field."""
    if key not in record or record[key] is None:
        raise BadRow(f"missing field: '{key}'")
    value = record[key]
    if not isinstance(value, str):
        raise BadRow(f"wrong type: '{key}' is {type(value).__name__}, expected a string")
    if not value.strip():
        raise BadRow(f"empty field: '{key}'")
    return value


def check_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Optional system turn, then user/assistant alternating, ending with a non-empty assistant turn."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise BadRow("empty turn: no user/assistant turns")
    for index, message in enumerate(messages):
        if message["role"] not in ROLES:
            raise BadRow(f"wrong role: turn {index + 1} has role {message['role']!r}")
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise BadRow(f"empty turn: turn {index + 1} ({message['role']}) has no text")
    for index, message in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise BadRow(f"wrong role: turn {index + 1 + len(messages) - len(body)} is {message['role']!r}, expected {expected!r}")
    if body[-1]["role"] != "assistant":
        raise BadRow("wrong role: the conversation does not end with an assistant turn")
    return messages


def example_key(example: Example) -> str:
    """Content hash used to drop exact duplicates."""
    return hashlib.sha256(json.dumps(example, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# ---------------------------------------------------------------- one source


Converter = Callable[[dict, dict[str, Any], SourceReport], Example]


@dataclass(frozen=True)
class AdapterSpec:
    """A format adapter: its record converter and the keys that identify the format."""

    name: str
    convert: Converter
    required_keys: tuple[str, ...]
    """Top-level keys every record of this format has; used to tell a wrong-format file apart."""
    description: str
    """Shape of one record, for error messages."""


def _looks_like(adapter: AdapterSpec, record: Any) -> bool:
    return isinstance(record, dict) and all(key in record for key in adapter.required_keys)


def convert_source(
    records: Iterator[tuple[int, Any]], adapter: AdapterSpec, options: dict[str, Any], report: SourceReport,
    strict: bool = False, probe_rows: int = 20,
) -> list[Example]:
    """Convert every record, counting and reporting bad ones; raise DataFormatError on a wrong format."""
    examples: list[Example] = []
    recognised = False
    for number, record in records:
        report.read += 1
        if not recognised and isinstance(record, dict):
            recognised = _looks_like(adapter, record)
            if not recognised and report.read >= probe_rows:
                raise _wrong_format(report.source, adapter, record)
        try:
            if isinstance(record, BadRow):
                raise record
            if not isinstance(record, dict):
                raise BadRow(f"not an object: got {type(record).__name__}")
            examples.append(adapter.convert(record, options, report))
        except Filtered as why:
            report.filtered[str(why)] += 1
        except BadRow as why:
            if strict:
                raise DataFormatError(f"{report.source}: row {number}: {why} (--strict: fix or remove the row)") from None
            report.add_bad(number, str(why))
    if not recognised and report.read:
        raise _wrong_format(report.source, adapter, None)
    report.kept = len(examples)
    return examples


def _wrong_format(source: str, adapter: AdapterSpec, record: Any) -> DataFormatError:
    seen = f"; a row has keys {sorted(record)}" if isinstance(record, dict) else ""
    return DataFormatError(
        f"{source}: not in the declared format {adapter.name!r}: expected {adapter.description}{seen}. "
        "Fix the recipe's `format` or the file."
    )


def dedupe(examples: list[Example]) -> tuple[list[Example], int]:
    """Drop exact duplicates, keeping first occurrences; returns (kept, number dropped)."""
    seen: set[str] = set()
    kept = []
    for example in examples:
        key = example_key(example)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept, len(examples) - len(kept)


def filter_length(examples: list[Example], count_tokens: Callable[[Example], int], max_tokens: int) -> tuple[list[Example], int]:
    """Drop examples longer than `max_tokens` once rendered; returns (kept, number dropped)."""
    kept = [example for example in examples if count_tokens(example) <= max_tokens]
    return kept, len(examples) - len(kept)
