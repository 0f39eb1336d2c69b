"""`python -m training export HF_DIR OUT.gguf --quant Q4_K_M [--verify]`: thin wrapper over `export_gguf`.

The `export` command is dispatched by `training/stages/export.py`, which adds the `export MODEL_ID`
form (stage 4 of `rebuild`): the stage sits above this library, so nothing here imports the stages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from serving.registry import QUANT_TYPES
from training.export.pipeline import ExportError, VerificationError, export_gguf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", help="Hugging Face LlamaForCausalLM folder (safetensors + tokenizer)")
    parser.add_argument("out", type=Path, help="output .gguf path (sha256 recorded in OUT.json)")
    add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The exporter's options, without the positionals (the `export` command adds its own)."""
    parser.add_argument("--quant", default="Q4_K_M", choices=QUANT_TYPES, help="llama.cpp type (default Q4_K_M)")
    parser.add_argument("--verify", action="store_true", help="run the tokenizer/logits/template parity checks")
    parser.add_argument("--keep-f16", action="store_true", help="keep the unquantized GGUF next to OUT")
    parser.add_argument("--name", help="general.name (default: the folder name)")
    parser.add_argument("--base-model", help="general.base_model.0.name, e.g. meta-llama/Llama-3.2-1B-Instruct")
    parser.add_argument("--finetune", help="general.finetune, e.g. support")
    parser.add_argument("--license", help="general.license, e.g. llama3.2")


def main(args: argparse.Namespace) -> int:
    try:
        result = export_gguf(Path(args.hf_dir), args.out, quant=args.quant, verify=args.verify, name=args.name,
                             base_model=args.base_model, finetune=args.finetune, license=args.license,
                             keep_f16=args.keep_f16)
    except VerificationError as exc:
        print(json.dumps(exc.report, indent=2, default=str))
        print(f"error: {exc}")
        return 1
    except ExportError as exc:
        print(f"error: {exc}")
        return 2
    if result.report is not None:
        print(f"verification: {result.report['summary']}")
    print(f"wrote {result.path} ({result.quant}, {result.size_bytes / 2**20:.1f} MiB)")
    print(f"sha256 {result.sha256}")
    return 0
