"""Command-line dispatcher for the training toolkit.

Each command lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
only the module of the command being run is imported, so `--help` stays fast and a
missing optional dependency only breaks the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import os

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("training.stages.export", "HF_DIR OUT.gguf: convert a Llama folder to GGUF; MODEL_ID: run stage 4"),
    "export-adapter": ("training.export.adapter", "RUN_OR_ADAPTER_DIR OUT.gguf: peft LoRA adapter -> llama.cpp LoRA GGUF"),
    "import-gguf": ("training.export.gguf_import", "MODEL.gguf HF_DIR: a Llama GGUF as a Hugging Face folder (training base)"),
    "random-model": ("training.random_model", "create a randomly initialised model shaped like a real one"),
    "build-demo": ("training.demo.build", "build the offline demo models (demo-base, demo-support)"),
    "rebuild": ("training.stages.rebuild", "rebuild a registered model from its recipe, every stage"),
    "prepare": ("training.stages.prepare", "prepare the recipe's datasets (stage 1)"),
    "train": ("training.stages.train", "LoRA/QLoRA fine-tune (stage 2)"),
    "merge": ("training.stages.merge", "merge the adapter into a 16-bit base (stage 3)"),
    "eval": ("training.stages.evaluate", "evaluate base vs fine-tune (stage 5)"),
    "compare": ("training.stages.compare", "MODEL_ID MODEL_ID ...: registry models answer prompt sets, side by side"),
    "publish": ("training.stages.publish", "model card, Hub upload, registry update (stage 6)"),
    "experiment": ("training.stages.experiment", "a grid of recipe overrides through the stages: one table, one plot"),
}


def _usage() -> str:
    lines = ["usage: python -m training COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `python -m training COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{_usage()}")
        return 2
    # OpenMP threads that spin while waiting are catastrophic on a shared 2-core box (build-demo measured
    # 5-7x slower under load); passive waiting costs almost nothing when idle. Set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module_name, help_ = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m training {command}", description=help_)
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(rest)) or 0)
