"""`python -m training export HF_DIR OUT.gguf --quant Q4_K_M [--verify]`: thin wrapper over `export_gguf`.

`python -m training export MODEL_ID` (no OUT) runs stage 4 of `rebuild` on the model's run folder instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from serving.registry import QUANT_TYPES
from training.export.pipeline import ExportError, VerificationError, export_gguf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", help="Hugging Face LlamaForCausalLM folder (safetensors + tokenizer), "
                                       "or a registry id to run the rebuild's export stage")
    parser.add_argument("out", type=Path, nargs="?", help="output .gguf path (sha256 recorded in OUT.json)")
    parser.add_argument("--quant", default="Q4_K_M", choices=QUANT_TYPES, help="llama.cpp type (default Q4_K_M)")
    parser.add_argument("--verify", action="store_true", help="run the tokenizer/logits/template parity checks")
    parser.add_argument("--keep-f16", action="store_true", help="keep the unquantized GGUF next to OUT")
    parser.add_argument("--name", help="general.name (default: the folder name)")
    parser.add_argument("--base-model", help="general.base_model.0.name, e.g. meta-llama/Llama-3.2-1B-Instruct")
    parser.add_argument("--finetune", help="general.finetune, e.g. support")
    parser.add_argument("--license", help="general.license, e.g. llama3.2")
    parser.add_argument("--registry", help="stage form: registry file (default: model_registry.yaml)")
    parser.add_argument("--runs-dir", help="stage form: parent of the run folder (default: runs/)")
    parser.add_argument("--force", action="store_true", help="stage form: re-run even when up to date")


def main(args: argparse.Namespace) -> int:
    if args.out is None:
        from training.stages import export as stage

        return stage.main(argparse.Namespace(model_id=args.hf_dir, registry=args.registry,
                                             runs_dir=args.runs_dir, force=args.force))
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
