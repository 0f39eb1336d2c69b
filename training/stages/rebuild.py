"""`python -m training rebuild MODEL_ID`: every stage in order, each skipped when its output is
up to date: prepare -> train -> merge -> export (GGUF, verified) -> eval -> publish (card, upload
or dry run, registry update)."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.stages import evaluate, export, merge, prepare, publish, train
from training.stages.run import add_run_arguments, open_run, stage_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--strict", action="store_true", help="any bad data row is an error")
    parser.add_argument("--resume", action="store_true", help="resume training from the latest checkpoint")
    parser.add_argument("--max-steps", type=int, default=None, help="limit training steps (smoke runs)")
    parser.add_argument("--attn", default="auto", help="attention implementation for training (auto: picked by the machine)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="answer length in the eval prompt set")
    parser.add_argument("--judge", default=None, help="optional eval judge (see `eval --help`)")
    parser.add_argument("--domain", default=None, help="eval prompt-set domain (see `eval --help`)")
    parser.add_argument("--no-adapter", action="store_true", help="do not upload the LoRA adapter")


def main(args: argparse.Namespace) -> int:
    with stage_errors("rebuild"):
        run = open_run(args)
        prepare.prepare(run, strict=args.strict)
        train.train(run, resume=args.resume, max_steps=args.max_steps, attn=args.attn)
        merge.merge(run)
        export.export(run)
        evaluate.evaluate(run, max_new_tokens=args.max_new_tokens, prompts_file=Path(evaluate.PROMPTS_PATH),
                          judge=args.judge, domain=args.domain)
        publish.publish(run, with_adapter=not args.no_adapter)
        print(f"[rebuild] {run.entry.id} done: {run.dir / 'run.json'}")
    return 0
