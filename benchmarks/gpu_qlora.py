"""QLoRA training throughput and peak GPU memory: Iris's configuration vs a naive one, same run.

Both go through the real code path (`training.sft.trainer.build_trainer`: 4-bit NF4 base with double
quantization and bf16 compute, LoRA on all linear layers, TRL's SFTTrainer) on a randomly
initialised Llama-3.2-1B-shaped model; only SFTConfig keys and the attention implementation differ:

- iris:  packing (BFD, which makes batches padding-free), SDPA attention, gradient checkpointing
- naive: every batch padded to max_length (`pad_to_multiple_of`), no packing, eager attention,
         no gradient checkpointing (and `naive+gc`: the same with gradient checkpointing)

The data are random token ids whose lengths follow a long-tailed, chat-like distribution
(log-normal, median 450 tokens, clipped to [32, max_length]); the second half of each example is
the "assistant" part that carries the loss. Throughput counts real (non-padding) tokens per second.

    python benchmarks/gpu_qlora.py --out results.json          # on a GPU machine
    python benchmarks/gpu_qlora.py --tiny --out /tmp/r.json    # CPU smoke test of the script
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = {
    "iris": {"sft": {"packing": True, "gradient_checkpointing": True}, "attn": "sdpa"},
    "naive": {"sft": {"packing": False, "padding_free": False, "gradient_checkpointing": False}, "attn": "eager"},
    # The naive configuration plus gradient checkpointing: separates checkpointing's share of the memory saving.
    "naive+gc": {"sft": {"packing": False, "padding_free": False, "gradient_checkpointing": True}, "attn": "eager"},
}
PAD_TO_MAX = ("naive", "naive+gc")  # pad_to_multiple_of=max_length pads every batch to max_length


def synthetic_rows(n: int, max_length: int, vocab: int, seed: int) -> list[dict]:
    """Pre-tokenized rows: random ids, chat-like lengths, loss on the second half (assistant_masks)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        length = int(min(max(rng.lognormvariate(math.log(450), 0.8), 32), max_length))
        prompt = length // 2
        rows.append({"input_ids": [rng.randrange(1000, vocab - 300) for _ in range(length)],
                     "assistant_masks": [0] * prompt + [1] * (length - prompt)})
    return rows


def make_base(folder: Path, tiny: bool) -> Path:
    """Save a random Llama-3.2-1B-shaped model (or a tiny one) and a small Llama-3-style tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    from training.random_model import SHAPES, ModelShape, llama_config
    from training.tokenizer import build_llama3_tokenizer

    shape = ModelShape(n_layer=2, hidden=256, n_head=4, n_head_kv=2, ffn=512) if tiny else SHAPES["llama-3.2-1b"]
    config = llama_config(shape)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    # The trainer only needs the tokenizer for its pad/eos ids; the data are already token ids.
    build_llama3_tokenizer(["iris benchmark text"] * 10, vocab_size=600).save_pretrained(folder)
    del model
    return folder


class StepClock:
    """A TrainerCallback timing each logged step (logging_steps=1) and counting real tokens."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self):
                self.points: list[tuple[int, float, float]] = []  # (step, time, cumulative tokens)

            def on_log(self, args, state, control, logs=None, **kwargs):
                import torch

                if logs and "num_tokens" in logs:
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    self.points.append((state.global_step, time.perf_counter(), float(logs["num_tokens"])))

        return _Clock()


def windows(points: list[tuple[int, float, float]], warmup: int, size: int) -> list[dict]:
    """Tokens/s and s/step over consecutive windows of `size` steps after `warmup` steps."""
    out = []
    start = warmup
    while start + size < len(points):
        (s0, t0, n0), (s1, t1, n1) = points[start], points[start + size]
        out.append({"steps": s1 - s0, "seconds": t1 - t0, "tokens": n1 - n0, "tokens_per_s": (n1 - n0) / (t1 - t0)})
        start += size
    return out


def run_config(name: str, base: Path, rows: list[dict], args, out_dir: Path) -> dict:
    import torch

    from training.sft.trainer import TrainPlan, build_trainer

    spec = CONFIGS[name]
    sft = {"max_length": args.max_length, "per_device_train_batch_size": args.batch_size, "learning_rate": 2e-4,
           "logging_steps": 1, "save_strategy": "no", "bf16": not args.tiny, "dataloader_num_workers": 0,
           "max_steps": args.warmup + args.repeats * args.window + 1, "lr_scheduler_type": "constant", **spec["sft"]}
    if name in PAD_TO_MAX:
        sft["pad_to_multiple_of"] = args.max_length
    plan = TrainPlan(base_checkpoint=str(base), method="qlora",
                     lora={"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"},
                     sft=sft, seed=0, output_dir=out_dir / name, attn_implementation=spec["attn"])
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    clock = StepClock()
    trainer = build_trainer(plan, rows, callbacks=[clock])
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    result = {
        "config": name, "attn": spec["attn"], "sft": sft, "wall_s": round(wall, 1),
        "windows": windows(clock.points, args.warmup, args.window),
        "final_loss": trainer.state.log_history[-2].get("loss"),
    }
    if torch.cuda.is_available():
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 1024**3
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 1024**3
    rates = [w["tokens_per_s"] for w in result["windows"]]
    result["tokens_per_s_median"] = statistics.median(rates) if rates else None
    del trainer
    gc.collect()
    return result


def summary(results: list[dict]) -> str:
    lines = ["| config | repeat | tokens/s (median of windows) | windows tokens/s | peak allocated GiB | peak reserved GiB |",
             "| --- | ---: | ---: | --- | ---: | ---: |"]
    for r in results:
        ws = ", ".join(f"{w['tokens_per_s']:.0f}" for w in r["windows"])
        lines.append(f"| {r['config']} | {r['repeat']} | {r['tokens_per_s_median']:.0f} | {ws} | "
                     f"{r.get('peak_allocated_gib', float('nan')):.2f} | {r.get('peak_reserved_gib', float('nan')):.2f} |")
    by = {name: [r for r in results if r["config"] == name] for name in CONFIGS}
    if not by["iris"] or not by["naive"]:
        return "\n".join(lines)
    speed = statistics.median(r["tokens_per_s_median"] for r in by["iris"]) / statistics.median(
        r["tokens_per_s_median"] for r in by["naive"])
    lines.append(f"\nthroughput iris/naive: {speed:.2f}x")
    if "peak_allocated_gib" in results[0]:
        mem = max(r["peak_allocated_gib"] for r in by["iris"]) / max(r["peak_allocated_gib"] for r in by["naive"])
        lines.append(f"peak allocated memory iris/naive: {mem:.1%}")
        if by["naive+gc"]:
            mem_gc = max(r["peak_allocated_gib"] for r in by["iris"]) / max(r["peak_allocated_gib"] for r in by["naive+gc"])
            lines.append(f"peak allocated memory iris/naive+gc: {mem_gc:.1%}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (checks the script, not the numbers)")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=2, help="per_device_train_batch_size of both configs")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--window", type=int, default=10, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per run")
    parser.add_argument("--runs", type=int, default=2, help="runs per config, interleaved iris/naive")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--warmup-run", action="store_true", help="run a short discarded training first")
    parser.add_argument("--work", default="/tmp/iris-bench")
    parser.add_argument("--out", default="gpu_qlora_results.json")
    args = parser.parse_args()

    import torch

    work = Path(args.work)
    base = make_base(work / "base", args.tiny)
    rows = synthetic_rows(args.rows, args.max_length, 128256, seed=0)
    if args.warmup_run:  # process-level warm-up (CUDA context, cuBLAS/bitsandbytes kernels, clocks); discarded
        run_config("iris", base, rows[:200], argparse.Namespace(**{**vars(args), "repeats": 1, "window": 2}), work)
    results = []
    for repeat in range(args.runs):
        for name in args.configs.split(","):
            result = run_config(name, base, rows, args, work)
            results.append({**result, "repeat": repeat + 1})
            print(json.dumps({k: v for k, v in results[-1].items() if k != "sft"}), flush=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report = {"device": device, "torch": torch.__version__, "args": vars(args), "results": results,
              "summary": summary(results)}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\ndevice: {device}\n{report['summary']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
