"""QLoRA training throughput and peak GPU memory: Iris's default configuration vs a typical TRL one, same run.

Every configuration goes through the real code path (`training.sft.trainer.build_trainer`: 4-bit NF4
base with double quantization and bf16 compute, LoRA on all linear layers, TRL's SFTTrainer,
gradient checkpointing) on a randomly initialised Llama-3.2-shaped model; only SFTConfig keys and
the attention implementation differ:

- typical:    what a TRL user usually runs for QLoRA: no packing, each batch padded to its longest
              row (TRL's dynamic padding), SDPA, gradient checkpointing
- iris-sdpa:  Iris before issue 13: packing (BFD, padding-free batches) + SDPA
- flex:       packing + flex attention (block-sparse document mask, compiled)
- sdpa+liger: packing + SDPA + Liger's fused kernels
- flex+liger: the default without activation offloading
- default:    Iris's default: `attn_implementation: auto` and no speed keys, so `training.sft.speed`
              picks for this machine (on a GPU with liger-kernel: flex attention, one padded batch
              shape, Liger kernels, gradient checkpoints offloaded to CPU)
- default+compile, default-b16, flex-dynamic: the default plus one more lever (`torch_compile`,
  batch 16, flex without the fixed batch shape)

The data are random token ids whose lengths follow a long-tailed, chat-like distribution
(log-normal, median 450 tokens, clipped to [32, max_length]); the second half of each example is
the "assistant" part that carries the loss. Throughput counts real (non-padding) tokens per second.
Each run is planned as `--planned-steps` steps (which is what `auto` sees) and stopped once the
timed windows are done; its wall time for the whole plan is projected from the measured setup,
first-steps overhead (compilation) and steady step time.

    python benchmarks/gpu_qlora.py --out results.json          # on a GPU machine
    python benchmarks/gpu_qlora.py --tiny --configs typical,iris-sdpa,default --out /tmp/r.json   # CPU smoke test
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

# Configurations other than the default say every speed key, so the machine's defaults add nothing to them.
PLAIN = {"use_liger_kernel": False, "activation_offloading": False}
CONFIGS = {
    "typical": {"sft": {"packing": False, **PLAIN}, "attn": "sdpa"},
    "iris-sdpa": {"sft": {"packing": True, **PLAIN}, "attn": "sdpa"},
    "flex": {"sft": {"packing": True, **PLAIN}, "attn": "flex_attention"},
    "flex-dynamic": {"sft": {"packing": True, "pad_to_multiple_of": 1, **PLAIN}, "attn": "flex_attention"},
    "sdpa+liger": {"sft": {"packing": True, "use_liger_kernel": True, "activation_offloading": False}, "attn": "sdpa"},
    "default": {"sft": {"packing": True}, "attn": "auto"},
    "flex+liger": {"sft": {"packing": True, "activation_offloading": False}, "attn": "auto"},
    "default+compile": {"sft": {"packing": True, "torch_compile": True}, "attn": "auto"},
    "default-b16": {"sft": {"packing": True, "per_device_train_batch_size": 16}, "attn": "auto"},
}
# Liger patches some functions module-wide (RoPE), so configurations without it run first in a process.
DEFAULT_ORDER = "typical,iris-sdpa,flex,sdpa+liger,flex+liger,default"


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


def make_base(folder: Path, like: str, tiny: bool) -> Path:
    """Save a random Llama-3.2-shaped model (`like`, or a tiny one) and a small Llama-3-style tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    from training.random_model import SHAPES, ModelShape, llama_config
    from training.tokenizer import build_llama3_tokenizer

    shape = ModelShape(n_layer=2, hidden=256, n_head=4, n_head_kv=2, ffn=512) if tiny else SHAPES[like]
    config = llama_config(shape, vocab_size=128256)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    # The trainer only needs the tokenizer for its pad/eos ids; the data are already token ids.
    build_llama3_tokenizer(["iris benchmark text"] * 10, vocab_size=600).save_pretrained(folder)
    del model
    return folder


def step_clock(stop_after: int):
    """A TrainerCallback timing each step (logging_steps=1), counting real tokens and stopping after `stop_after`."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.began = 0.0
            self.points: list[tuple[int, float, float]] = []  # (step, time, cumulative real tokens)
            self.losses: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            import torch

            if logs and "loss" in logs:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.points.append((state.global_step, time.perf_counter(), float(state.num_input_tokens_seen)))
                self.losses.append(round(float(logs["loss"]), 4))

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= stop_after:
                control.should_training_stop = True

    return StepClock()


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
           "max_steps": args.planned_steps, "lr_scheduler_type": "constant", "gradient_checkpointing": True,
           "include_num_input_tokens_seen": "non_padding", **spec["sft"]}
    plan = TrainPlan(base_checkpoint=str(base), method="qlora",
                     lora={"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"},
                     sft=sft, seed=0, output_dir=out_dir / name, attn_implementation=spec["attn"])
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start_gib = torch.cuda.memory_allocated() / 1024**3 if torch.cuda.is_available() else 0.0
    measured = args.warmup + args.repeats * args.window + 1
    clock = step_clock(measured)
    built = time.perf_counter()
    trainer = build_trainer(plan, rows, callbacks=[clock])
    build_s = time.perf_counter() - built
    trainer.train()
    model = trainer.model.get_base_model()
    result = {
        "config": name, "attn": model.config._attn_implementation, "sft": sft,
        "liger": bool(trainer.args.use_liger_kernel), "pad_to": trainer.data_collator.pad_to_multiple_of,
        "build_s": round(build_s, 1), "first_step_s": round(clock.points[0][1] - clock.began, 1),
        "windows": windows(clock.points, args.warmup, args.window), "losses": clock.losses,
    }
    step_s = statistics.median(w["seconds"] / w["steps"] for w in result["windows"]) if result["windows"] else 0.0
    # Everything the first `warmup` steps took beyond steady steps: compilation, autotuning, allocator warm-up.
    overhead = clock.points[args.warmup][1] - clock.began - (clock.points[args.warmup][0]) * step_s
    result.update(step_s=round(step_s, 4), warmup_overhead_s=round(overhead, 1),
                  projected_wall_s=round(build_s + overhead + args.planned_steps * step_s, 1))
    if torch.cuda.is_available():
        result["start_allocated_gib"] = start_gib
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 1024**3
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 1024**3
    rates = [w["tokens_per_s"] for w in result["windows"]]
    result["tokens_per_s_median"] = statistics.median(rates) if rates else None
    del trainer, model
    gc.collect()
    return result


def summary(results: list[dict], planned_steps: int) -> str:
    """A table of every run, then each configuration (median over its runs) against `typical`."""
    lines = ["| config | run | attn | liger | tokens/s (median) | windows tokens/s | peak alloc GiB | first step s"
             " | warm-up overhead s | s/step | projected wall s |",
             "| --- | ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        ws = ", ".join(f"{w['tokens_per_s']:.0f}" for w in r["windows"])
        lines.append(f"| {r['config']} | {r['repeat']} | {r['attn']} | {r['liger']} | {r['tokens_per_s_median'] or 0:.0f} | "
                     f"{ws} | {r.get('peak_allocated_gib', float('nan')):.2f} | {r['first_step_s']} | "
                     f"{r['warmup_overhead_s']} | {r['step_s']} | {r['projected_wall_s']} |")
    names = list(dict.fromkeys(r["config"] for r in results))
    by = {name: [r for r in results if r["config"] == name and r["tokens_per_s_median"]] for name in names}
    if not by.get("typical"):
        return "\n".join(lines)
    typical_rate = statistics.median(r["tokens_per_s_median"] for r in by["typical"])
    typical_mem = max(r.get("peak_allocated_gib", 0.0) for r in by["typical"]) or float("nan")
    lines += ["", f"| config | tokens/s | x typical | peak GiB | x typical | {planned_steps}-step wall s |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, runs in by.items():
        if not runs:
            continue
        rate = statistics.median(r["tokens_per_s_median"] for r in runs)
        mem = max(r.get("peak_allocated_gib", float("nan")) for r in runs)
        wall = statistics.median(r["projected_wall_s"] for r in runs)
        lines.append(f"| {name} | {rate:.0f} | {rate / typical_rate:.2f}x | {mem:.2f} | {mem / typical_mem:.2f}x | {wall:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (checks the script, not the numbers)")
    parser.add_argument("--like", default="llama-3.2-1b", help="model shape (training.random_model.SHAPES)")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=8, help="per_device_train_batch_size of every config")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--window", type=int, default=10, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per run")
    parser.add_argument("--planned-steps", type=int, default=300, help="the run length each config is planned (and projected) for")
    parser.add_argument("--runs", type=int, default=1, help="runs per config, interleaved")
    parser.add_argument("--configs", default=DEFAULT_ORDER, help="comma-separated, in order, of " + ", ".join(CONFIGS))
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--work", default="/tmp/iris-bench")
    parser.add_argument("--out", default="gpu_qlora_results.json")
    args = parser.parse_args()

    import torch

    work = Path(args.work)
    base = make_base(work / f"base-{'tiny' if args.tiny else args.like}", args.like, args.tiny)
    rows = synthetic_rows(args.rows, args.max_length, 128256, seed=0)
    results = []
    for repeat in range(args.runs):
        for name in args.configs.split(","):
            try:
                result = run_config(name, base, rows, args, work)
            except Exception as err:  # one failing lever (a missing package, a compile error) must not end the run
                result = {"config": name, "error": f"{type(err).__name__}: {err}"[:2000]}
            results.append({**result, "repeat": repeat + 1})
            print(json.dumps({k: v for k, v in results[-1].items() if k != "sft"}), flush=True)
            Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    done = [r for r in results if "error" not in r]
    report = {"device": device, "torch": torch.__version__, "args": vars(args), "results": results,
              "summary": summary(done, args.planned_steps)}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\ndevice: {device}\n{report['summary']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
