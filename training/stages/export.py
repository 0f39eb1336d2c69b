"""Stage 4 of `rebuild`: merge/model/ -> export/<name>-Q4_K_M.gguf with the exporter's verification,
the trained peft adapter as a llama.cpp LoRA GGUF beside it (export/<name>-lora-f16.gguf, training/export/
adapter.py: what a base + adapter registry entry serves), plus the base checkpoint's GGUF at the same quant so
`eval` compares like with like offline. llama.cpp loads the adapter over that base GGUF (its names, shapes and
rank checks) every time; the full parity check against the merged model in transformers (`export-adapter
--verify`: about 25 s of CPU for SmolLM2-135M, too much for CI's rebuild) runs with `verify_adapter`
(`rebuild --verify-adapter`).

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


def adapter_name(run: Run) -> str:
    """The LoRA GGUF's file name: the registry adapter entry's own file, else `<id>-lora-f16.gguf`."""
    adapter = run.entry.source.adapter
    if adapter is not None:
        return Path(adapter.hub.filename if adapter.hub else adapter.file.path).name
    return f"{run.entry.id}-lora-f16.gguf"


def export(run: Run, verify_adapter: bool = False) -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    inputs = {"merge": run.upstream("merge")["fingerprint"], "export": run.recipe.export.model_dump(),
              "base": run.base_identity(), "name": gguf_name(run), "adapter": adapter_name(run),
              "verify_adapter": verify_adapter}
    return run_stage(run, "export", inputs, lambda out: _export(run, out, verify_adapter))


def _base_dir(run: Run) -> Path:
    """The base checkpoint as a local folder (a Hub id is fetched: config, weights and templates only)."""
    base_dir = Path(run.base_checkpoint())
    if base_dir.is_dir():
        return base_dir
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(run.recipe.base_checkpoint, allow_patterns=["*.json", "*.safetensors", "*.jinja"]))


def _export(run: Run, out: Path, verify_adapter: bool) -> dict[str, Any]:
    from training.export import export_gguf
    from training.export.adapter import data_sha256, export_adapter

    spec, entry = run.recipe.export, run.entry
    tuned = export_gguf(
        run.dir / "merge" / "model", out / gguf_name(run), quant=spec.quant, verify=spec.verify,
        name=entry.display_name, base_model=run.recipe.base_checkpoint, finetune=entry.id, license=entry.license,
    )
    base_dir = _base_dir(run)
    base = export_gguf(base_dir, out / f"base-{spec.quant}.gguf", quant=spec.quant, verify=False,
                       name=run.recipe.base_checkpoint, license=entry.license)
    adapter = export_adapter(run.dir / "train" / "adapter", out / adapter_name(run), base=base_dir,
                             verify=verify_adapter)
    check_adapter_loads(base.path, Path(adapter["path"]))
    return {"gguf": str(tuned.path), "sha256": tuned.sha256, "size_bytes": tuned.size_bytes, "quant": tuned.quant,
            "verification": tuned.report["summary"] if tuned.report else None,
            "adapter_gguf": adapter["path"], "adapter_sha256": adapter["sha256"],
            "adapter_size_bytes": adapter["size_bytes"], "adapter_rank": adapter["rank"],
            "adapter_verification": adapter["verification"]["summary"] if adapter["verification"] else None,
            "data_sha256": data_sha256(run.recipe, run.root),
            "base_gguf": str(base.path), "base_sha256": base.sha256}


def check_adapter_loads(base_gguf: Path, adapter_gguf: Path) -> None:
    """llama.cpp reads the adapter over the base GGUF, or ExportError with its reason (a second of CPU: no
    tokens are computed). llama-cpp-python raises when `llama_adapter_lora_init` returns NULL."""
    from llama_cpp import Llama

    from training.export import ExportError

    try:
        Llama(model_path=str(base_gguf), lora_path=str(adapter_gguf), n_ctx=64, n_threads=1, verbose=False).close()
    except (RuntimeError, ValueError) as err:
        raise ExportError(f"llama.cpp refused the adapter {adapter_gguf.name} over {base_gguf.name}: {err}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.export import cli

    parser.add_argument("hf_dir", metavar="MODEL_ID|HF_DIR",
                        help="registry id to run this stage, or a Hugging Face LlamaForCausalLM folder to convert")
    parser.add_argument("out", type=Path, nargs="?", help="output .gguf path when converting a folder "
                                                          "(sha256 recorded in OUT.json)")
    cli.add_options(parser)
    parser.add_argument("--registry", help="stage form: registry file (default: model_registry.yaml)")
    parser.add_argument("--runs-dir", help="stage form: parent of the run folder (default: runs/)")
    parser.add_argument("--run-dir", help="stage form: the run folder itself (default: RUNS_DIR/MODEL_ID)")
    parser.add_argument("--force", action="store_true", help="stage form: re-run even when up to date")


def main(args: argparse.Namespace) -> int:
    if args.out is not None:
        from training.export import cli

        return cli.main(args)
    with stage_errors("export"):
        export(open_run(argparse.Namespace(model_id=args.hf_dir, registry=args.registry, runs_dir=args.runs_dir,
                                           run_dir=args.run_dir, force=args.force)))
    return 0
