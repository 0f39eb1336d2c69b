"""Stage 3, `python -m training merge MODEL_ID`: fold train/adapter/ into a 16-bit copy of the base.

For QLoRA the adapter is merged into the 16-bit base, not the 4-bit one it trained against. The
result (merge/model/) is saved with the base tokenizer and the model's own chat template, ready
for the GGUF exporter. A record without its model folder (a run folder brought back without the weights)
is not up to date.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.stages.run import Run, add_run_arguments, open_run, run_stage, stage_errors

DTYPES = ("bfloat16", "float16", "float32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16", help="dtype of the merged weights")


def merge(run: Run, dtype: str = "bfloat16") -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    inputs = {"train": run.upstream("train")["fingerprint"], "base": run.base_identity(), "dtype": dtype}
    if not (run.dir / "merge" / "model" / "config.json").exists():  # e.g. a run folder copied without its weights
        run = replace(run, force=True)
    return run_stage(run, "merge", inputs, lambda out: _merge(run, out, dtype))


def load_with_adapter(base: str, adapter: Path, dtype: str):
    """The base in `dtype` with the adapter attached, not merged (the reference merge is checked against)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    return PeftModel.from_pretrained(model, str(adapter))


def _merge(run: Run, out: Path, dtype: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    base = run.base_checkpoint()
    merged = load_with_adapter(base, run.dir / "train" / "adapter", dtype).merge_and_unload()
    target = out / "model"
    merged.save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)  # the base's own chat template, not the training one
    return {"path": str(target), "dtype": dtype, "parameters": sum(p.numel() for p in merged.parameters())}


def main(args: argparse.Namespace) -> int:
    with stage_errors("merge"):
        merge(open_run(args), dtype=args.dtype)
    return 0
