"""Stage 2, `python -m training train MODEL_ID`: LoRA/QLoRA fine-tune on prepare/train.jsonl.

Writes train/adapter/ (the peft adapter), train/checkpoints/ (every `save_steps`), train/loss.csv,
train/loss.png and train/metrics.json (runtime, tokens/s, peak memory, trainable parameters: count and % of
the base's). loss.csv has a row per logged step (train loss, or eval loss on the first rows of
prepare/test.jsonl every `eval_steps`) with the memory at that step. `--resume` continues from the latest
checkpoint after an interruption. Runs unchanged under `accelerate launch` (DDP).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from training.stages.run import Run, add_run_arguments, is_main_process, open_run, run_stage, stage_errors, write_json_atomic

EVAL_CURVE_ROWS = (8, 32)
"""Fewest and most held-out rows evaluated during training (the eval curve); the eval stage scores the held-out
split itself."""


def eval_curve_rows(train_rows: int) -> int:
    """Held-out rows of the eval curve: a tenth of the training rows, within `EVAL_CURVE_ROWS`, so its passes stay
    a small share of the run. A pass is a forward over those rows: on 2 CPU cores SmolLM2-135M read 32 grounded
    rows (~1,000 tokens each with their passages) in 122 s, where training on 80 rows took 435 s (CI's CPU recipe,
    two passes: 245 s); a 3,000-row GPU run keeps 32."""
    low, high = EVAL_CURVE_ROWS
    return max(low, min(high, train_rows // 10))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train/checkpoints")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps (smoke runs)")
    parser.add_argument("--attn", default="auto", help="attention implementation (auto: flex_attention on a GPU for long packed runs, else sdpa; sdpa, flex_attention, eager, ...)")


def train(run: Run, resume: bool = False, max_steps: int | None = None, attn: str = "auto") -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    recipe = run.recipe
    overrides = {"max_steps": max_steps} if max_steps else {}
    inputs = {"data": run.upstream("prepare")["fingerprint"], "base": run.base_identity(), "method": recipe.method,
              "lora": recipe.lora, "sft": recipe.sft, "seed": recipe.seed, "overrides": overrides, "attn": attn}
    return run_stage(run, "train", inputs, lambda out: _train(run, out, overrides, attn, resume))


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return found[-1] if found else None


def _trim_csv(csv_path: Path, last_step: int) -> None:
    """Drop loss rows logged after the checkpoint we resume from (the resumed run logs them again)."""
    if csv_path.exists():
        lines = csv_path.read_text().splitlines()
        kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",")[0]) <= last_step]
        csv_path.write_text("\n".join(kept) + "\n")


def _resume_point(out: Path, resume: bool) -> Path | None:
    checkpoints, csv_path = out / "checkpoints", out / "loss.csv"
    checkpoint = latest_checkpoint(checkpoints) if resume else None
    if resume and checkpoint is None:
        print(f"[train] --resume: no checkpoint in {checkpoints}, starting from step 0")
    if checkpoint is None and is_main_process():
        shutil.rmtree(checkpoints, ignore_errors=True)
        csv_path.unlink(missing_ok=True)
    elif checkpoint is not None:
        print(f"[train] resuming from {checkpoint}")
        _trim_csv(csv_path, int(checkpoint.name.split("-")[-1]))
    return checkpoint


def _train(run: Run, out: Path, overrides: dict[str, Any], attn: str, resume: bool) -> dict[str, Any]:
    from training.sft.trainer import (TrainPlan, build_trainer, metrics_callback, peak_memory, plot_loss,
                                      trainable_parameters)
    from training.stages.prepare import read_jsonl

    data_dir = run.dir / "prepare"
    checkpoint = _resume_point(out, resume)
    plan = TrainPlan(
        base_checkpoint=run.base_checkpoint(), method=run.recipe.method, lora=run.recipe.lora, sft=run.recipe.sft,
        seed=run.recipe.seed, output_dir=out / "checkpoints", overrides=overrides, attn_implementation=attn,
    )
    train_rows = read_jsonl(data_dir / "train.jsonl")
    eval_rows = read_jsonl(data_dir / "test.jsonl")[:eval_curve_rows(len(train_rows))]
    trainer = build_trainer(plan, train_rows, eval_rows,
                            callbacks=[metrics_callback(out / "loss.csv")])
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = {**_summary(trainer, result.metrics, checkpoint), **trainable_parameters(trainer.model),
               "base_checkpoint": plan.base_checkpoint}  # the folder trained from (an earlier stage's, for run:)
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(out / "adapter")
        plot_loss(out / "loss.csv", out / "loss.png", f"{run.entry.id}: train and eval loss")
        write_json_atomic(out / "metrics.json", {**metrics, **peak_memory()})
    return {**metrics, **peak_memory()}


def _summary(trainer, train_metrics: dict[str, Any], checkpoint: Path | None) -> dict[str, Any]:
    from training.sft.trainer import read_loss_csv

    runtime = float(train_metrics.get("train_runtime", 0.0))
    history = trainer.state.log_history
    tokens = float(next((h["num_tokens"] for h in reversed(history) if "num_tokens" in h), 0.0))
    eval_s = sum(float(h.get("eval_runtime", 0.0)) for h in history)  # tokens/s counts training time only
    losses = read_loss_csv(Path(trainer.args.output_dir).parent / "loss.csv") if trainer.is_world_process_zero() else []
    return {
        "global_step": trainer.state.global_step, "train_loss": train_metrics.get("train_loss"),
        "first_loss": losses[0]["loss"] if losses else None, "last_loss": losses[-1]["loss"] if losses else None,
        "train_runtime_s": runtime, "eval_runtime_s": round(eval_s, 2), "num_tokens": tokens,
        "tokens_per_s": round(tokens / (runtime - eval_s), 1) if runtime > eval_s else None,
        "resumed_from": checkpoint.name if checkpoint else None,
        "loaded_in_4bit": bool(getattr(trainer.model.get_base_model(), "is_loaded_in_4bit", False)),
    }


def main(args: argparse.Namespace) -> int:
    with stage_errors("train"):
        train(open_run(args), resume=args.resume, max_steps=args.max_steps, attn=args.attn)
    return 0
