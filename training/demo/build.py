"""`python -m training build-demo`: build the offline demo models from the registry's demo recipes.

Stages: bundled data (generated if absent) -> tokenizer -> demo-base pretraining -> demo-support
LoRA fine-tune + merge -> held-out support loss of both -> Q4_K_M GGUF export -> build.json.
Architecture and hyper-parameters come from the `demo-base` / `demo-support` recipes in
model_registry.yaml. A build is skipped when build.json records the same inputs (data, recipes,
seed, code) and every output exists, unless `--force`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from serving.files import sha256_of
from training.demo import datagen

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "models" / "demo"
SAMPLE_QUESTION = "Hi, where is my order BL-12345? It still has not arrived."
BASE_ID, SUPPORT_ID = "demo-base", "demo-support"
VERSIONED = ("torch", "transformers", "peft", "tokenizers", "gguf", "llama_cpp_python")  # recorded in build.json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: the recipes' seed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default models/demo)")
    parser.add_argument("--force", action="store_true", help="rebuild even if outputs exist for the same inputs")
    parser.add_argument("--registry", type=Path, default=None, help="registry file (default model_registry.yaml)")


@dataclass(frozen=True)
class Plan:
    """Everything one build reads and writes, resolved from the registry and the command line."""

    base: object
    """The demo-base registry entry."""
    support: object
    """The demo-support registry entry."""
    seed: int
    """Training seed."""
    out: Path
    """Output folder."""

    def data_paths(self, entry) -> list[Path]:
        return [REPO_ROOT / d.path for d in entry.recipe.datasets]

    def held_out(self) -> Path:
        """The support set's held-out file: `<name>_test.jsonl` beside it."""
        train = self.data_paths(self.support)[0]
        return train.with_name(f"{train.stem}_test{train.suffix}")

    def hf_dir(self, entry) -> Path:
        return self.out / f"{entry.id}-hf"

    def gguf(self, entry, registry) -> Path:
        return self.out / registry.local_path(entry).name

    def build_json(self) -> Path:
        return self.out / "build.json"


@dataclass
class Timer:
    """Seconds spent per stage, in stage order."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, bar):
        """Time a stage; the progress bar shows its name and advances one tick at its end."""
        bar.set_description(name)
        start = time.perf_counter()
        yield
        self.stages[name] = round(time.perf_counter() - start, 2)
        bar.update(1)


# ---------------------------------------------------------------- inputs and skipping


def fingerprint(plan: Plan) -> str:
    """Hash of everything the outputs depend on: data, recipes, seed and the code that builds them."""
    digest = hashlib.sha256()
    inputs = sorted({*plan.data_paths(plan.base), *plan.data_paths(plan.support), plan.held_out()})
    code = sorted((REPO_ROOT / "training" / "demo").glob("*.py")) + [REPO_ROOT / "training" / "tokenizer.py"]
    for path in inputs + code + sorted((REPO_ROOT / "training" / "templates").glob("*")):
        digest.update(f"{path.relative_to(REPO_ROOT)}:{sha256_of(path)}\n".encode())
    for entry in (plan.base, plan.support):
        digest.update(entry.model_dump_json().encode())
    digest.update(f"seed={plan.seed}".encode())
    return digest.hexdigest()


def up_to_date(plan: Plan, registry, inputs: str) -> bool:
    outputs = [plan.build_json()] + [p for e in (plan.base, plan.support) for p in (plan.hf_dir(e), plan.gguf(e, registry))]
    if not all(p.exists() for p in outputs):
        return False
    return json.loads(plan.build_json().read_text()).get("inputs_sha256") == inputs


def ensure_data(plan: Plan) -> None:
    """Generate the bundled data when any file is missing (it is normally committed)."""
    needed = [*plan.data_paths(plan.base), *plan.data_paths(plan.support), plan.held_out()]
    if not all(p.exists() for p in needed):
        datagen.generate(datagen.DEFAULT_DATA_DIR)
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(f"demo data missing after generation: {', '.join(missing)}")


# ---------------------------------------------------------------- the build


def split_datasets(entry) -> tuple[list[Path], list[Path]]:
    """(chat files, text files) of a recipe."""
    chats = [REPO_ROOT / d.path for d in entry.recipe.datasets if d.format == "chat_jsonl"]
    texts = [REPO_ROOT / d.path for d in entry.recipe.datasets if d.format == "text"]
    return chats, texts


def _progress(bar):
    """A step callback that moves the bar on from where it stands now (redrawn as often as the bar allows)."""
    start = bar.n

    def on_step(step: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(start + step + 1 - bar.n)
    return on_step


def run_build(plan: Plan, registry, inputs: str) -> dict:
    import torch

    from serving.progress import ProgressBar
    from training.demo import finetune, loop, pretrain
    from training.stages.run import package_versions

    torch.manual_seed(plan.seed)
    torch.use_deterministic_algorithms(True)
    timer, report = Timer(), {"seed": plan.seed, "inputs_sha256": inputs, "torch_threads": torch.get_num_threads(),
                              "load_average_start": os.getloadavg(), "data_sha256": _data_hashes(plan)}
    base_sft = loop.TrainSettings.from_recipe(plan.base.recipe.sft, f"{BASE_ID}.recipe.sft")
    support_sft = loop.TrainSettings.from_recipe(plan.support.recipe.sft, f"{SUPPORT_ID}.recipe.sft")
    chat_files, text_files = split_datasets(plan.base)
    support_files, _ = split_datasets(plan.support)
    bar = ProgressBar(total=6, unit="step", dynamic_ncols=True)  # retotalled once the step counts are known
    with timer.stage("tokenizer", bar):
        # Only demo-base's data: like a real base model, support words are pieces the base already knows,
        # not untrained ids that LoRA (which leaves embeddings frozen) could never learn to emit.
        tokenizer = pretrain.build_tokenizer(chat_files, text_files,
                                             plan.base.recipe.architecture["vocab_size"],
                                             plan.base.context_length)
        base_blocks = pretrain.pretrain_blocks(tokenizer, chat_files, text_files, base_sft.max_length)
        support_blocks = finetune.support_blocks(tokenizer, support_files, support_sft)
    base_steps, support_steps = base_sft.total_steps(len(base_blocks)), support_sft.total_steps(len(support_blocks))
    bar.total = base_steps + support_steps + 5  # + one tick per other stage
    with timer.stage("pretrain", bar):
        model = pretrain.new_model(plan.base.recipe.architecture, tokenizer, plan.seed)
        base_losses = loop.train(model, base_blocks, base_sft, plan.seed, _progress(bar))
        _save_fresh(plan.hf_dir(plan.base), lambda d: pretrain.save(model, tokenizer, d))
    with timer.stage("finetune", bar):
        merged, support_losses = finetune.lora_finetune(
            model, plan.support.recipe.lora, support_blocks, support_sft, plan.seed, _progress(bar))
        _save_fresh(plan.hf_dir(plan.support), lambda d: pretrain.save(merged, tokenizer, d))
    with timer.stage("evaluate", bar):
        report["held_out"] = _evaluate(plan, tokenizer)
    with timer.stage("export", bar):
        report["gguf"] = {e.id: _export(plan, registry, e) for e in (plan.base, plan.support)}
    bar.close()
    report.update(
        timings_s=timer.stages, total_s=round(sum(timer.stages.values()), 2), load_average_end=os.getloadavg(),
        train={BASE_ID: _loss_summary(base_losses, base_blocks), SUPPORT_ID: _loss_summary(support_losses, support_blocks)},
        parameters=sum(p.numel() for p in merged.parameters()), vocab_size=len(tokenizer),
        versions=package_versions(VERSIONED, missing=None),
    )
    return report


def _data_hashes(plan: Plan) -> dict[str, str]:
    paths = sorted({*plan.data_paths(plan.base), *plan.data_paths(plan.support), plan.held_out()})
    return {str(p.relative_to(REPO_ROOT)): sha256_of(p) for p in paths}


def _save_fresh(folder: Path, save) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    save(folder)


def _evaluate(plan: Plan, tokenizer) -> dict:
    """Held-out assistant loss and a sample answer of both saved models (reloaded, as exported)."""
    from transformers import LlamaForCausalLM

    from training.demo import data, evaluate

    chats = data.read_chat_jsonl(plan.held_out())
    result = {"file": str(plan.held_out().relative_to(REPO_ROOT)), "dialogues": len(chats), "question": SAMPLE_QUESTION}
    for entry in (plan.base, plan.support):
        model = LlamaForCausalLM.from_pretrained(plan.hf_dir(entry))
        result[entry.id] = {"assistant_loss": round(evaluate.assistant_loss(model, tokenizer, chats), 4),
                            "first_reply_match": round(evaluate.first_reply_match(model, tokenizer, chats), 3),
                            "sample_answer": evaluate.sample_answer(model, tokenizer, SAMPLE_QUESTION)}
    return result


def _export(plan: Plan, registry, entry) -> dict:
    from training.export import export_gguf

    result = export_gguf(plan.hf_dir(entry), plan.gguf(entry, registry), quant=entry.recipe.export.quant,
                         name=entry.display_name, base_model=entry.base_model,
                         finetune="support" if entry.base_model else None, license=entry.license)
    return {"path": result.path.name, "sha256": result.sha256, "quant": result.quant, "size_bytes": result.size_bytes}


def _loss_summary(losses: list[float], blocks: list) -> dict:
    return {"steps": len(losses), "blocks": len(blocks), "first_loss": round(losses[0], 4),
            "last_loss": round(sum(losses[-5:]) / len(losses[-5:]), 4)}


def print_summary(report: dict) -> None:
    held = report["held_out"]
    print(f"demo build done in {report['wall_s']:.0f} s (stages: {report['timings_s']}); load average at start "
          f"{report['load_average_start'][0]:.1f}, end {report['load_average_end'][0]:.1f}")
    print(f"held-out support loss ({held['dialogues']} dialogues, assistant tokens): "
          f"{BASE_ID} {held[BASE_ID]['assistant_loss']:.3f}, {SUPPORT_ID} {held[SUPPORT_ID]['assistant_loss']:.3f}; "
          f"first reply fits the question: {held[BASE_ID]['first_reply_match']:.0%} vs "
          f"{held[SUPPORT_ID]['first_reply_match']:.0%}")
    print(f"Q: {held['question']}")
    for model_id in (BASE_ID, SUPPORT_ID):
        print(f"  {model_id}: {held[model_id]['sample_answer']}")
    for model_id, info in report["gguf"].items():
        print(f"  {info['path']}: {info['size_bytes'] / 1e6:.1f} MB sha256 {info['sha256'][:16]}…")


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from serving.registry import load_registry

    registry = load_registry(args.registry)
    base, support = registry.get(BASE_ID), registry.get(SUPPORT_ID)
    plan = Plan(base=base, support=support, seed=base.recipe.seed if args.seed is None else args.seed,
                out=args.out.resolve())
    ensure_data(plan)
    inputs = fingerprint(plan)
    if not args.force and up_to_date(plan, registry, inputs):
        print(f"demo models in {plan.out} are up to date (same data, recipes, seed and code); --force rebuilds")
        return 0
    plan.out.mkdir(parents=True, exist_ok=True)
    try:
        report = run_build(plan, registry, inputs)
    except (ValueError, FileNotFoundError) as err:  # bad recipe keys, data or export refusals (ExportError)
        print(f"build-demo failed: {err}", file=sys.stderr)
        return 1
    report["wall_s"] = round(time.perf_counter() - started, 1)
    plan.build_json().write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_summary(report)
    return 0
