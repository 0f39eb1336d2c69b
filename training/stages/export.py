"""Stage 4 of `rebuild`: merge/model/ -> export/<name>-Q4_K_M.gguf with the exporter's verification,
plus the base checkpoint's GGUF at the same quant so `eval` compares like with like offline.

`python -m training export` lands here: `export MODEL_ID` runs this stage, `export HF_DIR OUT.gguf`
is handed to the exporter's CLI (training/export/cli.py), a library that never imports the stages.
`rebuild` calls `export()` directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.stages.run import Run, open_run, run_stage, stage_errors


def gguf_name(run: Run) -> str:
    """The file name the registry entry serves, else `<id>-<quant>.gguf`."""
    hub = run.entry.source.hub
    return hub.filename if hub else f"{run.entry.id}-{run.recipe.export.quant}.gguf"


def export(run: Run) -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    inputs = {"merge": run.upstream("merge")["fingerprint"], "export": run.recipe.export.model_dump(),
              "base": run.recipe.base_checkpoint, "name": gguf_name(run)}
    return run_stage(run, "export", inputs, lambda out: _export(run, out))


def _export(run: Run, out: Path) -> dict[str, Any]:
    from training.export import export_gguf

    spec, entry = run.recipe.export, run.entry
    tuned = export_gguf(
        run.dir / "merge" / "model", out / gguf_name(run), quant=spec.quant, verify=spec.verify,
        name=entry.display_name, base_model=run.recipe.base_checkpoint, finetune=entry.id, license=entry.license,
    )
    base_dir = Path(run.base_checkpoint())
    if not base_dir.is_dir():
        from huggingface_hub import snapshot_download

        base_dir = Path(snapshot_download(run.recipe.base_checkpoint, allow_patterns=["*.json", "*.safetensors", "*.jinja"]))
    base = export_gguf(base_dir, out / f"base-{spec.quant}.gguf", quant=spec.quant, verify=False,
                       name=run.recipe.base_checkpoint, license=entry.license)
    return {"gguf": str(tuned.path), "sha256": tuned.sha256, "size_bytes": tuned.size_bytes, "quant": tuned.quant,
            "verification": tuned.report["summary"] if tuned.report else None,
            "base_gguf": str(base.path), "base_sha256": base.sha256}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.export import cli

    parser.add_argument("hf_dir", metavar="MODEL_ID|HF_DIR",
                        help="registry id to run this stage, or a Hugging Face LlamaForCausalLM folder to convert")
    parser.add_argument("out", type=Path, nargs="?", help="output .gguf path when converting a folder "
                                                          "(sha256 recorded in OUT.json)")
    cli.add_options(parser)
    parser.add_argument("--registry", help="stage form: registry file (default: model_registry.yaml)")
    parser.add_argument("--runs-dir", help="stage form: parent of the run folder (default: runs/)")
    parser.add_argument("--force", action="store_true", help="stage form: re-run even when up to date")


def main(args: argparse.Namespace) -> int:
    if args.out is not None:
        from training.export import cli

        return cli.main(args)
    with stage_errors("export"):
        export(open_run(argparse.Namespace(model_id=args.hf_dir, registry=args.registry,
                                           runs_dir=args.runs_dir, force=args.force)))
    return 0
