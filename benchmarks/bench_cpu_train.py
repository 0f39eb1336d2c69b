"""CPU training speed, bf16 autocast vs fp32 (a script, not a test): which one should a CPU default to?

Each configuration is a fresh process running the real trainer (`training.sft.trainer.build_trainer`)
on the SmolLM2-135M support recipe (its LoRA and SFTConfig keys, packing, batch 2 x 1024 tokens)
for `--steps` optimizer steps on the first 256 support dialogues; only `bf16` differs. Tokens/s is over
the steps after `--warmup` (real tokens counted by TRL / wall time between step ends); configurations
alternate, `--repeats` times.

    flock /tmp/iris-bench.lock python benchmarks/bench_cpu_train.py --steps 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_cpu_inference import interleaved  # noqa: E402
from benchmarks.bench_serving import spread  # noqa: E402

CONFIGS = {"fp32": {"bf16": False}, "bf16": {"bf16": True, "use_cpu": True}}  # TrainingArguments wants use_cpu for bf16 without a GPU


def worker(args) -> dict:
    from transformers import TrainerCallback

    from serving.registry import load_registry
    from training.sft.trainer import TrainPlan, build_trainer
    from training.stages.prepare import read_jsonl

    recipe = load_registry(REPO / "model_registry.yaml").get("smollm2-135m-support-cpu").recipe  # the CPU recipe
    rows = [{"messages": r["messages"]} for r in read_jsonl(REPO / "data/support/train.jsonl")[:256]]
    stamps: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        plan = TrainPlan(base_checkpoint=str(REPO / recipe.base_checkpoint), method="lora", lora=recipe.lora,
                         sft={**recipe.sft, **CONFIGS[args.worker], "logging_steps": 1}, seed=0, output_dir=Path(out),
                         overrides={"max_steps": args.steps, "save_strategy": "no"})
        trainer = build_trainer(plan, rows, callbacks=[StepTimes()])
        trainer.train()
    logs = [h for h in trainer.state.log_history if "num_tokens" in h]
    tokens = logs[-1]["num_tokens"] - logs[args.warmup - 1]["num_tokens"]
    seconds = stamps[-1] - stamps[args.warmup - 1]
    return {"tokens_per_s": tokens / seconds, "s_per_step": seconds / (args.steps - args.warmup),
            "losses": [round(h["loss"], 4) for h in logs], "threads": __import__("torch").get_num_threads()}


def run_worker(config: str, args) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", config, "--json", out.name, "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, stdout=sys.stderr)
        return json.loads(Path(out.name).read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per configuration")
    parser.add_argument("--out", type=Path, default=None, help="raw runs as JSON")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        Path(args.json).write_text(json.dumps(worker(args)))
        return 0
    runs = interleaved(list(CONFIGS), args.repeats, lambda config: run_worker(config, args))
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))
    fp32 = statistics.median(r["tokens_per_s"] for r in runs["fp32"])
    print(f"SmolLM2-135M LoRA r16, {args.steps} steps ({args.warmup} warm-up), {runs['fp32'][0]['threads']} threads\n")
    print("| configuration | tokens/s (min / median / max) | s/step (median) | vs fp32 |\n|---|---:|---:|---:|")
    for config, rs in runs.items():
        rate = statistics.median(r["tokens_per_s"] for r in rs)
        print(f"| {config} | {spread([r['tokens_per_s'] for r in rs])} | "
              f"{statistics.median(r['s_per_step'] for r in rs):.2f} | {rate / fp32:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
