"""Data adapters on fixture files shaped like FineTome (ShareGPT JSONL), Bitext (CSV) and exam-prep
JSONL: conversions, bad-row reports with row/line numbers, --strict, wrong-format errors, dedupe,
length filter and deterministic splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.registry import DatasetSpec
from training.data import DataFormatError, prepare_source, split_examples
from training.data.exam import strip_meta

ROOT = Path(__file__).resolve().parent.parent
FIX = "tests/fixtures"


def prepare(fmt: str, name: str, strict: bool = False, max_tokens: int | None = None, count=lambda e: 1, **kw):
    spec = DatasetSpec(format=fmt, path=f"{FIX}/{name}", test_size=kw.pop("test_size", 0.1), **kw)
    return prepare_source(spec, ROOT, 42, count, max_tokens, strict=strict)


def all_examples(split):
    return split.train + split.test


def test_finetome_roles_score_filter_dedupe_and_bad_rows_with_line_numbers():
    split, report = prepare("sharegpt", "finetome.jsonl", options={"min_score": 4.0})
    r = report.as_dict()
    assert r["read"] == 32 and r["kept"] == 25
    assert r["filtered"] == {"score < 4.0": 1} and r["notes"]["duplicates_dropped"] == 1
    assert r["bad"] == {"wrong role": 1, "empty turn": 1, "not UTF-8": 1, "missing field": 1, "not JSON": 1}
    assert r["bad_examples"] == [
        "row 11: wrong role: turn 2 is from 'bot', expected one of ['gpt', 'human', 'system']",
        "row 12: empty turn: turn 2 (assistant) has no text",
        "row 16: not UTF-8: byte 50 of the line",
        "row 24: missing field: 'conversations' must be a non-empty list",
        "row 25: not JSON: Expecting value at column 20",
    ]
    examples = all_examples(split)
    assert {m["role"] for e in examples for m in e["messages"]} == {"system", "user", "assistant"}
    first = next(e for e in examples if e["messages"][0]["role"] == "system")
    assert [m["role"] for m in first["messages"]][:3] == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == "You are a helpful assistant."


def test_finetome_without_min_score_keeps_low_scores():
    _, report = prepare("sharegpt", "finetome.jsonl")
    assert report.kept == 26 and not report.filtered


def test_strict_makes_the_first_bad_row_an_error():
    with pytest.raises(DataFormatError, match=r"finetome\.jsonl: row 11: wrong role: .*--strict"):
        prepare("sharegpt", "finetome.jsonl", strict=True)


def test_bitext_csv_with_persona_by_category():
    split, report = prepare("bitext", "bitext.csv", options={"persona_by_category": True})
    assert report.read == 32 and report.kept == 30 and sum(report.bad.values()) == 2
    assert report.bad_examples == ["row 31: missing field: 'instruction'", "row 32: missing field: 'response'"]
    refund = next(e for e in all_examples(split) if "refund" in e["messages"][1]["content"])
    system, user, assistant = refund["messages"]
    assert system["role"] == "system" and "refund policy" in system["content"]
    assert user["role"] == "user" and assistant["content"].startswith("I'm sorry for the trouble.")
    plain, _ = prepare("bitext", "bitext.csv")
    assert all(len(e["messages"]) == 2 for e in all_examples(plain))


def test_exam_strips_leaked_meta_instructions_and_reports_bad_rows():
    split, report = prepare("exam_jsonl", "exam.jsonl")
    assert report.notes["meta_instructions_stripped"] == 8
    assert report.bad_examples == [
        "row 6: wrong role: turn 2 has role 'teacher'",
        "row 10: missing field: 'messages' must be a non-empty list",
        "row 13: empty turn: the answer was only meta-instructions",
    ]
    answers = [e["messages"][-1]["content"] for e in all_examples(split)]
    assert not any(a.startswith("Briefly") or "Relate it to" in a for a in answers)
    assert "Mitosis is cell division that makes two identical cells." in answers


@pytest.mark.parametrize("answer, expected", [
    ("Briefly compare A and B. A is big. B is small.", "A is big. B is small."),
    ("Sugar is made.\nRelate it to everyday life.", "Sugar is made."),
    ("Cells divide. Relate it to growth.", "Cells divide."),
    ("Give one example. Then more text follows here.", "Then more text follows here."),
    ("Compare apples: they are red. Oranges are orange.", "Compare apples: they are red. Oranges are orange."),
])
def test_strip_meta(answer, expected):
    assert strip_meta(answer)[0] == expected


def test_wrong_declared_format_names_the_expected_format():
    with pytest.raises(DataFormatError, match=r"not in the declared format 'bitext': expected JSON objects with 'instruction'.*keys \['messages'\]"):
        prepare("bitext", "exam.jsonl")
    with pytest.raises(DataFormatError, match=r"declared format 'sharegpt'"):
        prepare("sharegpt", "bitext.csv")


def test_unknown_option_and_missing_file_are_clear():
    with pytest.raises(DataFormatError, match=r"format 'sharegpt': unknown option\(s\) \['min_scor'\]; allowed: min_score"):
        prepare("sharegpt", "finetome.jsonl", options={"min_scor": 4})
    with pytest.raises(FileNotFoundError, match="dataset file not found"):
        prepare("sharegpt", "nope.jsonl")


def test_split_is_deterministic_and_disjoint():
    a, _ = prepare("sharegpt", "finetome.jsonl", test_size=0.2)
    b, _ = prepare("sharegpt", "finetome.jsonl", test_size=0.2)
    assert a == b and len(a.test) == 5 and len(a.train) == 21
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731
    assert not {key(e) for e in a.train} & {key(e) for e in a.test}
    other = split_examples(all_examples(a), 0.2, seed=7)
    assert other.test != a.test


def test_rows_cap_and_token_length_filter():
    long_ones = lambda e: sum(len(m["content"]) for m in e["messages"])  # noqa: E731
    split, report = prepare("sharegpt", "finetome.jsonl", max_tokens=200, count=long_ones, rows=20)
    assert report.notes["too_long_dropped"] > 0
    assert len(all_examples(split)) == 20 - report.notes["too_long_dropped"]
    assert all(long_ones(e) <= 200 for e in all_examples(split))
