"""`python -m training rebuild MODEL_ID`: every stage in order, each skipped when its output is
up to date: prepare -> train -> merge -> export (GGUF verified, and the LoRA adapter GGUF) -> eval ->
publish (card, upload or dry run, registry update).

A recipe whose `base_checkpoint` is `run:<model-id>` (a second training stage) first brings that model's run up
to date through its merge stage (rebuilding it when its merged model is missing, and saying so), then trains from
the merged model.

First it says whether a registered adapter is stale: the training-data sha256 its registry entry records
against the sha256 of the recipe's data now (`training.export.adapter.adapter_data_check`); `--check` says
only that, exit status 1 when stale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.stages import evaluate, export, merge, prepare, publish, train
from training.stages.run import Run, add_run_arguments, open_run, stage_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--strict", action="store_true", help="any bad data row is an error")
    parser.add_argument("--resume", action="store_true", help="resume training from the latest checkpoint")
    parser.add_argument("--max-steps", type=int, default=None, help="limit training steps (smoke runs)")
    parser.add_argument("--attn", default="auto", help="attention implementation for training (auto: picked by the machine)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="answer length in the eval prompt set")
    parser.add_argument("--heldout-rows", type=int, default=evaluate.HELDOUT_ROWS,
                        help="test examples used for held-out loss in the eval stage")
    parser.add_argument("--task-rows", type=int, default=evaluate.TASK_ROWS,
                        help="task-metric questions per held-out set in the eval stage")
    parser.add_argument("--judge", default=None, help="optional eval judge (see `eval --help`)")
    parser.add_argument("--domain", default=None, help="eval prompt-set domain (see `eval --help`)")
    parser.add_argument("--no-adapter", action="store_true", help="do not upload the LoRA adapter (peft folder and GGUF)")
    parser.add_argument("--verify-adapter", action="store_true",
                        help="check the adapter GGUF against the merged model in transformers (logits, greedy tokens)")
    parser.add_argument("--check", action="store_true",
                        help="only say whether the registered adapter is stale (exit status 1) and run no stage")


def check_data(run: Run, always: bool) -> bool:
    """Print whether the registered adapter was trained on the recipe's current data (for an adapter entry, or
    `always`); True when stale."""
    from training.export.adapter import adapter_data_check

    stale, reason = adapter_data_check(run.entry, run.root)
    if always or run.entry.source.adapter is not None:
        print(f"[rebuild] {reason}", flush=True)
    return stale


def earlier_stage(run: Run, args: argparse.Namespace) -> None:
    """Prepare, train and merge the run a `run:<model-id>` base names (each skipped when up to date; its own
    earlier stage first), so this run trains from a current merged model."""
    stage = run.stage_run()
    if stage is None:
        return
    merged = stage.dir / "merge" / "model" / "config.json"
    why = ("is brought up to date first" if merged.exists()
           else f"has no merged model ({merged.parent}), so it is rebuilt first")
    print(f"[rebuild] {run.entry.id} starts from {run.recipe.base_checkpoint}: {stage.entry.id}'s run {why} "
          "(prepare, train, merge; each skipped when up to date)", flush=True)
    earlier_stage(stage, args)
    prepare.prepare(stage, strict=args.strict)
    train.train(stage, max_steps=args.max_steps, attn=args.attn)
    merge.merge(stage)


def main(args: argparse.Namespace) -> int:
    with stage_errors("rebuild"):
        run = open_run(args)
        stale = check_data(run, always=args.check)
        if args.check:
            return 1 if stale else 0
        earlier_stage(run, args)
        prepare.prepare(run, strict=args.strict)
        train.train(run, resume=args.resume, max_steps=args.max_steps, attn=args.attn)
        merge.merge(run)
        export.export(run, verify_adapter=args.verify_adapter)
        evaluate.evaluate(run, max_new_tokens=args.max_new_tokens, heldout_rows=args.heldout_rows,
                          prompts_file=Path(evaluate.PROMPTS_PATH), judge=args.judge, domain=args.domain,
                          task_rows=args.task_rows)
        publish.publish(run, with_adapter=not args.no_adapter)
        print(f"[rebuild] {run.entry.id} done: {run.dir / 'run.json'}")
    return 0
