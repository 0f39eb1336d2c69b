"""`python -m training compare`: any number of registry models answer the prompt sets (data in
training/stages/prompt_sets/) through the serving engine, one report side by side.

The real-model tests run the command once on four real models (the demo pair, SmolLM2 and its shipped LoRA adapter,
which loads over its base) and check coverage, columns and numbers; never the words a model produces."""

from __future__ import annotations

import json
import mmap
import re
import subprocess
import sys
from pathlib import Path

import pytest

from training.stages.compare import PeakRss
from training.stages.prompt_set import ALL, PromptSetError, load_prompt_sets, set_names

REPO = Path(__file__).resolve().parent.parent
MODELS = ("demo-base", "demo-support", "smollm2-135m-instruct", "smollm2-135m-support")
EIGHT = {"greeting", "poem", "naming", "code", "logic-puzzle", "creative-writing", "customer-support", "explanation"}
slow = pytest.mark.slow


def compare_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", "compare", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    done = compare_cli(*MODELS, "--set", ALL, "--max-new-tokens", "8", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def report(report_dir) -> dict:
    return json.loads((report_dir / "report.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the data


def test_the_sets_hold_the_required_categories_and_counts():
    sets = load_prompt_sets()
    assert set(sets) == {"categories", "general", "study", "manual"}
    assert set(sets["categories"].categories()) == EIGHT and len(sets["categories"].prompts) == 8
    assert [len(sets[name].prompts) for name in ("general", "study", "manual")] == [10, 10, 10]
    manual = sets["manual"].categories()
    assert "translation" in manual and "network-troubleshooting" in manual
    every = [p.prompt for s in sets.values() for p in s.prompts]
    assert len(every) == len(set(every)) == 38  # no prompt is asked twice across the sets
    assert set_names() == [*sets, ALL]


def test_a_set_file_with_a_repeated_prompt_or_an_unknown_key_is_refused_by_name(tmp_path):
    (tmp_path / "twice.yaml").write_text("description: d\nprompts:\n  - {category: a, prompt: same}\n"
                                         "  - {category: b, prompt: same}\n", encoding="utf-8")
    with pytest.raises(PromptSetError, match=r"twice\.yaml.*asked twice"):
        load_prompt_sets(tmp_path)
    (tmp_path / "twice.yaml").unlink()
    (tmp_path / "extra.yaml").write_text("description: d\nprompts:\n  - {category: a, prompt: p, answer: x}\n",
                                         encoding="utf-8")
    with pytest.raises(PromptSetError, match=r"extra\.yaml.*answer"):
        load_prompt_sets(tmp_path)


def test_peak_rss_sees_memory_held_inside_the_block():
    # A fresh anonymous mapping, not a bytearray: malloc may hand a bytearray pages the process already holds
    # (freed by an earlier test in the same process), and then the resident size does not grow.
    with PeakRss(0.005) as peak:
        before = peak.peak
        block = mmap.mmap(-1, 96 * 2**20)
        for offset in range(0, len(block), mmap.PAGESIZE):  # touch each page so it becomes resident
            block[offset] = 1
    block.close()
    assert before > 0 and peak.peak - before > 80


# ---------------------------------------------------------------- refusals


def test_unknown_model_ids_are_refused_naming_the_valid_ones(registry):
    done = compare_cli("demo-base", "no-such-model", "--set", "categories")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "no-such-model" in done.stderr and all(mid in done.stderr for mid in registry.ids())


def test_unknown_set_is_refused_naming_the_valid_ones():
    done = compare_cli("demo-base", "--set", "no-such-set")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no-such-set" in done.stderr and all(name in done.stderr for name in set_names())


def test_a_model_given_twice_is_refused():
    done = compare_cli("demo-base", "demo-support", "demo-base")
    assert done.returncode != 0 and "Traceback" not in done.stderr and "repeated: demo-base" in done.stderr


def test_a_model_that_cannot_be_served_here_is_refused_before_any_loads(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a Hub entry that is not cached: nothing to load
    done = compare_cli("demo-base", "llama-3.2-1b-instruct")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "not available here: llama-3.2-1b-instruct" in done.stderr and "answering" not in done.stderr


# ---------------------------------------------------------------- real models


@slow
def test_every_model_answers_every_prompt_of_every_set(report):
    sets = load_prompt_sets()
    asked = [(s.name, p.category, p.prompt) for s in sets.values() for p in s.prompts]
    assert [(i["set"], i["category"], i["prompt"]) for i in report["items"]] == asked
    for item in report["items"]:
        assert list(item["answers"]) == list(MODELS)
        for answer in item["answers"].values():
            assert answer["finish"] in ("stop", "length") and 0 <= answer["tokens"] <= 8 and answer["seconds"] > 0
    assert [m["prompts"] for m in report["models"]] == [38] * len(MODELS)
    for m in report["models"]:
        assert m["cut"] == sum(i["answers"][m["id"]]["finish"] == "length" for i in report["items"])


@slow
def test_each_model_has_positive_timings_and_its_own_rss(report, registry):
    models = {m["id"]: m for m in report["models"]}
    assert list(models) == list(MODELS)
    for m in models.values():
        assert m["load_s"] > 0 and m["seconds_mean"] > 0
        assert 0 < m["seconds_min"] <= m["seconds_median"] <= m["seconds_max"]
        assert m["tokens"] > 0 and m["tokens_per_s"] > 0
        assert 0 < m["rss_before_mib"] <= m["peak_rss_mib"]
    # the adapter loads over its base, as the engine serves it; the merged demo fine-tune is a file of its own
    assert models["smollm2-135m-support"]["base"] == "smollm2-135m-instruct"
    assert models["demo-support"]["base"] is None
    # SmolLM2's weights (~100 MiB file) are resident while it answers, and more than the 2 MiB demo model's
    grew = {mid: m["peak_rss_mib"] - m["rss_before_mib"] for mid, m in models.items()}
    assert grew["smollm2-135m-instruct"] > 50 and grew["smollm2-135m-instruct"] > grew["demo-base"]


@slow
def test_the_markdown_report_has_a_column_per_model_and_a_row_per_prompt(report_dir, report):
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    headers = [line for line in text.splitlines() if line.startswith("| # | category | prompt |")]
    assert len(headers) == len(report["sets"]) == 4
    for header in headers:
        assert [c.strip() for c in header.strip("|").split("|")][3:] == list(MODELS)
    rows = [line for line in text.splitlines() if re.match(r"^\| \d+ \| [a-z-]+ \|", line)]
    assert len(rows) == 38
    unescaped = [len(re.findall(r"(?<!\\)\|", row)) for row in rows]
    assert set(unescaped) == {3 + len(MODELS) + 1}  # answers with a '|' are escaped and stay in their cell
    for m in report["models"]:
        assert re.search(rf"^\| {re.escape(m['id'])} \|", text, re.MULTILINE)
