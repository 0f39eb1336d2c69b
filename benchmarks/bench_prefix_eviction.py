"""Benchmark of a grounded persona's first visitor after its pre-read prefix lost its slot (a script, not a test).

A busy Space has more conversations than KV slots: once every slot belongs to a conversation, the pre-read
prefixes (`Engine._preread`) are saved to RAM and their slots taken. This measures what the next visitor of the
long persona waits for (TTFT) and how many prompt tokens it did not read (`cached_prompt_tokens`), so a scheduler
that serves the prefix from its RAM save can be compared with one that reads it again.

Each process is fresh: it builds the two personas of `bench_grounding.py` (~100-token and ~1,500-token shared
prefixes), loads the model with 4 slots (both prefixes pre-read), lets `--fillers` conversations of the short
persona take the slots (each stays owned: not forgotten), then asks the long persona one new question. Report: per
process TTFT and cached tokens; min / median / max over processes.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_prefix_eviction.py --processes 3

Prints a Markdown table row; `--json PATH` keeps the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_grounding import QUESTION, smollm2_path, write_personas  # noqa: E402


def worker(args) -> dict:
    from llama_cpp import Llama

    from serving.config import ServingSettings
    from serving.context.layer import ContextLayer, ContextSettings
    from serving.engine import PREFIX_OWNER, ChatRequest, Engine
    from serving.generation import GenerationSettings
    from serving.personas import load_personas
    from serving.registry import parse_registry

    vocab = Llama(str(args.model), vocab_only=True, verbose=False)
    folder = Path(tempfile.mkdtemp(prefix="bench-eviction-"))
    write_personas(folder, lambda text: len(vocab.tokenize(text.encode(), add_bos=False)), args.prefix_tokens)
    personas = load_personas(folder)
    context = ContextLayer.from_personas(personas.personas.values(), folder,
                                         ContextSettings(orders_db=None, orders_csv=None, budget_share=0.5))
    entry = {"id": "bench", "display_name": "bench", "kind": "base", "context_length": 4096,
             "source": {"local": {"path": str(args.model)}}}
    registry = parse_registry({"hub_owner": "bench", "models": [entry]}, REPO / "model_registry.yaml")
    engine = Engine(registry, ServingSettings(ram_budget_mb=16384, slots=4), personas=personas, context=context)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.tokens, ignore_eos=True)
    engine.prepare("bench")
    scheduler = engine.pool._loaded["bench"].model.scheduler
    deadline = time.monotonic() + 600
    while scheduler.busy_slots() or not all(scheduler.cached_tokens(PREFIX_OWNER + p) for p in ("short", "long")):
        if time.monotonic() > deadline:
            sys.exit("the pre-reads did not finish within 600 s")
        time.sleep(0.01)
    for i in range(args.fillers):  # conversations that keep their slots: the prefixes go to RAM
        engine.complete(ChatRequest("bench", [{"role": "user", "content": f"Question {i}: where is my parcel?"}],
                                    settings, f"filler-{i}", persona_id="short"))
    in_slots = [s.owner[0] for s in scheduler._slots if s.owner]
    _, stats = engine.complete(ChatRequest("bench", [{"role": "user", "content": QUESTION}], settings, "visitor",
                                           persona_id="long"))
    counts = dict(scheduler.counts)
    engine.close()
    return {"ttft_s": stats.ttft_s, "cached": stats.cached_prompt_tokens, "n_prompt": stats.n_prompt_tokens,
            "slots_before": in_slots, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--fillers", type=int, default=4, help="short-persona conversations before the visitor")
    parser.add_argument("--prefix-tokens", type=int, default=1500)
    parser.add_argument("--tokens", type=int, default=4, help="answer tokens (ignore_eos)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or smollm2_path()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    runs = []
    for _ in range(args.processes):
        cmd = [sys.executable, __file__, "--worker", "--model", str(args.model), "--fillers", str(args.fillers),
               "--prefix-tokens", str(args.prefix_tokens), "--tokens", str(args.tokens)]
        runs.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    ttft = [r["ttft_s"] for r in runs]
    cached = [r["cached"] for r in runs]
    print(f"| {args.model.name} | {args.fillers} | {min(ttft):.3f} / {statistics.median(ttft):.3f} / "
          f"{max(ttft):.3f} | {statistics.median(cached):.0f} of {runs[0]['n_prompt']} | "
          f"{runs[0]['counts'].get('prefix_restores', 0)} |")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
