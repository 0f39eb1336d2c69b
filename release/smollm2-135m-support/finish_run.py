"""Finish the GPU run of `smollm2-135m-support` on a CPU box: merge, export (Q4_K_M, verified) and the eval stage.

The GPU ran `python -m training experiment smollm2-135m-support --grid 'datasets[0].rows=3000' --attn sdpa
--heldout-rows 150 --max-new-tokens 96` (prepare -> train -> merge -> transformers eval); its run folder came back
without merge/model (too large to bring). This script reopens that folder with the same recipe override and runs
the stages the GPU box cannot (llama.cpp): merge again, export, eval (four task cells through llama.cpp).

    python release/smollm2-135m-support/finish_run.py RUN_DIR merge-export
    python release/smollm2-135m-support/finish_run.py RUN_DIR eval --task-rows 20 --heldout-rows 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from serving.registry import load_registry  # noqa: E402
from training.stages import evaluate, export, merge  # noqa: E402
from training.stages.experiment import _open, recipe_with  # noqa: E402
from training.stages.run import stage_errors  # noqa: E402

MODEL_ID = "smollm2-135m-support"
OVERRIDES = {"datasets[0].rows": 3000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("step", choices=("merge-export", "eval"))
    parser.add_argument("--task-rows", type=int, default=20)
    parser.add_argument("--heldout-rows", type=int, default=60)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    with stage_errors("finish"):
        registry = load_registry()
        entry = registry.get(MODEL_ID)
        run = _open(registry, entry, recipe_with(entry.recipe, OVERRIDES), args.run_dir)
        if args.step == "merge-export":
            merge.merge(run)
            print(export.export(run)["metrics"])
        else:
            record = evaluate.evaluate(run, max_new_tokens=args.max_new_tokens, heldout_rows=args.heldout_rows,
                                       task_rows=args.task_rows)
            print(record["metrics"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
