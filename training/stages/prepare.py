"""Stage 1, `python -m training prepare MODEL_ID`: the recipe's datasets -> prepare/train.jsonl,
prepare/test.jsonl and prepare/report.json (row counts, bad rows with their row/line numbers).

Sources are read through their format adapter (training/data), deduplicated, capped to `rows`,
filtered to `sft.max_length` tokens with the base model's tokenizer and split with the recipe seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.stages.run import Run, add_run_arguments, file_sha256, open_run, run_stage, stage_errors, write_json_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--strict", action="store_true", help="make any bad row an error instead of skipping it")


def _source_identity(run: Run, path: str) -> str:
    local = run.root / path
    return file_sha256(local) if local.is_file() else f"hub:{path}"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def prepare(run: Run, strict: bool = False) -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    run.ensure_base()
    recipe = run.recipe
    inputs = {
        "datasets": [spec.model_dump(mode="json") for spec in recipe.datasets],
        "sources": [_source_identity(run, path) for spec in recipe.datasets for path in (spec.path, spec.test_path)
                    if path],
        "seed": recipe.seed, "max_length": recipe.sft.get("max_length"), "base": run.base_identity(),
        "strict": strict,
    }
    return run_stage(run, "prepare", inputs, lambda out: _prepare(run, out, strict))


def _prepare(run: Run, out: Path, strict: bool) -> dict[str, Any]:
    from training.data import prepare_source
    from training.sft.template import count_tokens
    from training.sft.trainer import load_tokenizer

    tokenizer = load_tokenizer(run.base_checkpoint())
    max_tokens = run.recipe.sft.get("max_length")
    train, test, reports = [], [], []
    for spec in run.recipe.datasets:
        split, report = prepare_source(
            spec, run.root, run.recipe.seed, lambda ex: count_tokens(tokenizer, ex), max_tokens, strict=strict
        )
        train += split.train
        test += split.test
        reports.append(report.as_dict())
        _print_report(report.as_dict())
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    write_json_atomic(out / "report.json", {"sources": reports, "train": len(train), "test": len(test)})
    return {"train_examples": len(train), "test_examples": len(test),
            "bad_rows": sum(r["bad_total"] for r in reports)}


def _print_report(report: dict[str, Any]) -> None:
    print(f"  {report['source']}: read {report['read']}, kept {report['kept']}, bad {report['bad_total']} "
          f"{report['bad'] or ''}, filtered {report['filtered'] or 0}, notes {report['notes']}")
    for line in report["bad_examples"]:
        print(f"    skipped {line}")


def main(args: argparse.Namespace) -> int:
    with stage_errors("prepare"):
        prepare(open_run(args), strict=args.strict)
    return 0
