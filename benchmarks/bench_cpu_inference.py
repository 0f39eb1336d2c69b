"""CPU inference benchmark (a script, not a test): one model answered by transformers (PyTorch fp32 and
bf16) and by its GGUF through llama.cpp: decode tokens/s, time to first token, peak RSS.

Every configuration runs in a fresh process, `--repeats` times, configurations interleaved so background
load hits all alike; each process loads the model, warms up with 8 tokens, then times one greedy answer
of `--tokens` tokens (end-of-sequence ignored, so every run decodes the same count) to the same prompt
ids (the HF tokenizer's chat template; the GGUF has the same vocabulary). TTFT = prompt evaluation plus
the first token; decode tokens/s = tokens after the first / time after the first.

    flock /tmp/iris-bench.lock python benchmarks/bench_cpu_inference.py --name smollm2-135m \\
        --hf models/smollm2-135m-instruct-hf --gguf /tmp/iris-bench/smollm2-Q4_K_M.gguf

Prints a Markdown table (min / median / max, ratios to llama.cpp of the medians and of the best runs, and the
load average: the box may be shared) and writes the raw runs as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_serving import QUESTION, SYSTEM, spread  # noqa: E402

BACKENDS = ("llama.cpp", "torch-fp32", "torch-bf16")


def prompt_ids(hf_dir: str) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def timings(start: float, stamps: list[float]) -> dict[str, float]:
    """TTFT and decode rate from the time each new token arrived."""
    n = len(stamps)
    return {"n_tokens": n, "ttft_s": stamps[0] - start,
            "tokens_per_s": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0}


def worker_llama(args, ids: list[int]) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=args.gguf, n_ctx=1024, n_threads=args.threads, n_threads_batch=args.threads,
                n_batch=512, use_mmap=True, verbose=False)

    def answer(count: int) -> list[float]:
        llm.reset()
        stamps = []
        for _ in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) == count:
                break
        return stamps

    answer(8)
    start = time.perf_counter()
    return timings(start, answer(args.tokens))


def worker_torch(args, ids: list[int], dtype_name: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.generation.streamers import BaseStreamer

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.hf, dtype=getattr(torch, dtype_name)).eval()

    class Stamps(BaseStreamer):
        def __init__(self) -> None:
            self.calls: list[float] = []

        def put(self, value) -> None:
            self.calls.append(time.perf_counter())

        def end(self) -> None:
            pass

    def answer(count: int) -> list[float]:
        streamer = Stamps()
        with torch.inference_mode():
            model.generate(torch.tensor([ids]), max_new_tokens=count, min_new_tokens=count, do_sample=False,
                           streamer=streamer, pad_token_id=0)
        return streamer.calls[1:]  # the first put() is the prompt

    answer(8)
    start = time.perf_counter()
    return timings(start, answer(args.tokens))


def worker(args) -> dict:
    ids = prompt_ids(args.hf)
    if args.worker == "llama.cpp":
        result = worker_llama(args, ids)
    else:
        result = worker_torch(args, ids, {"torch-fp32": "float32", "torch-bf16": "bfloat16"}[args.worker])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    # the box is shared: the 1-minute load average says how disturbed this run was (2 = both cores busy)
    return {**result, "n_prompt_tokens": len(ids), "peak_rss_gib": round(peak, 3), "load_1min": os.getloadavg()[0]}


def run_worker(backend: str, args) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", backend, "--json", out.name, "--hf", args.hf,
               "--gguf", args.gguf, "--tokens", str(args.tokens), "--threads", str(args.threads)]
        subprocess.run(cmd, check=True, cwd=REPO)
        return json.loads(Path(out.name).read_text())


def interleaved(configs: list[str], repeats: int, run: Callable[[str], dict]) -> dict[str, list[dict]]:
    """`repeats` rounds of every configuration in turn, each `run(config)` a fresh process (background load then
    hits all configurations alike)."""
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    for repeat in range(repeats):
        for config in configs:
            runs[config].append(run(config))
            print(f"[{repeat + 1}/{repeats}] {config}: {runs[config][-1]}", file=sys.stderr, flush=True)
    return runs


def report(args, runs: dict[str, list[dict]]) -> str:
    """Min / median / max per configuration; ratios to llama.cpp of the medians and of the best runs."""
    from serving.cpu import cpu_flags, cpu_model

    flags = cpu_flags()
    rate = {b: [r["tokens_per_s"] for r in rs] for b, rs in runs.items()}
    ttft = {b: [r["ttft_s"] for r in rs] for b, rs in runs.items()}
    ref = "llama.cpp"
    loads = [r["load_1min"] for rs in runs.values() for r in rs]
    lines = [f"### {args.name}: {args.repeats} fresh processes per configuration, {args.threads} threads, "
             f"{runs[ref][0]['n_prompt_tokens']}-token prompt, {args.tokens} greedy tokens", "",
             f"CPU: {cpu_model()} ({os.cpu_count()} cores visible); avx512_bf16: {'avx512_bf16' in flags}, "
             f"amx_bf16: {'amx_bf16' in flags}. GGUF: `{Path(args.gguf).name}`. 1-minute load average at the end "
             f"of the runs: {min(loads):.1f} to {max(loads):.1f}.", "",
             "| configuration | decode tokens/s (min / median / max) | TTFT s (min / median / max) | peak RSS GiB "
             "| decode vs llama.cpp (median; best) | TTFT vs llama.cpp (median; best) |", "|---|---:|---:|---:|---:|---:|"]
    for backend, rs in runs.items():
        lines.append(f"| {backend} | {spread(rate[backend])} | {spread(ttft[backend])} | "
                     f"{statistics.median(r['peak_rss_gib'] for r in rs):.2f} | "
                     f"{statistics.median(rate[backend]) / statistics.median(rate[ref]):.2f}x; "
                     f"{max(rate[backend]) / max(rate[ref]):.2f}x | "
                     f"{statistics.median(ttft[backend]) / statistics.median(ttft[ref]):.2f}x; "
                     f"{min(ttft[backend]) / min(ttft[ref]):.2f}x |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="model", help="label for the report")
    parser.add_argument("--hf", required=True, help="Hugging Face folder (transformers runs, prompt tokens)")
    parser.add_argument("--gguf", required=True, help="GGUF of the same model (llama.cpp runs)")
    parser.add_argument("--tokens", type=int, default=64, help="greedy tokens to decode")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both backends")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per configuration")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset of " + ",".join(BACKENDS))
    parser.add_argument("--out", type=Path, default=None, help="raw runs as JSON")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.worker:
        Path(args.json).write_text(json.dumps(worker(args)))
        return 0
    runs = interleaved(args.backends.split(","), args.repeats, lambda backend: run_worker(backend, args))
    if args.out:
        args.out.write_text(json.dumps({"name": args.name, "args": {k: str(v) for k, v in vars(args).items()},
                                        "runs": runs}, indent=2))
    print(report(args, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
