"""The 1B-vs-3B CPU trade-off (a script, not a test): Q4_K_M and Q8_0 of the Llama 3.2 shapes through Iris's engine.

Issue 23, item 5. For each GGUF, in a fresh process: load time and RSS after load; time to first token of a new
conversation with a ~500-token prompt; one visitor's decode tokens/s; then 4 visitors at the same moment (4 slots of
the batching scheduler, distinct ~500-token messages): the tokens they generated per second from the first visitor's
first token to the last answer's end (the later visitors' prompt reading falls in that span: this is what a Space
delivers to four people who ask at once, not a pure decode rate), and the last visitor's TTFT; and
the process's peak RSS. Configurations are interleaved over `--repeats` rounds so background load hits all alike.
Answers never end early (`bench_batching.FullLengthLoader`), so every run decodes `--tokens` tokens.

The models have **random weights** in the real shapes (`python -m training random-model --like llama-3.2-1b
--quant Q8_0 ...`): speed and memory depend on the shape and the quant, not on the weights.

    python -m training random-model --like llama-3.2-3b --out /tmp/rand3b                 # Q4_K_M (+ hf/)
    python -m training export /tmp/rand3b/hf /tmp/rand3b/llama-3.2-3b-random-Q8_0.gguf --quant Q8_0
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_size_tradeoff.py \\
        1b-Q4_K_M=/tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf 1b-Q8_0=... 3b-Q4_K_M=... 3b-Q8_0=...

PyTorch bf16 at 3B (transformers on CPU, same shape) is `benchmarks/bench_cpu_inference.py --backends torch-bf16`.
Prints a Markdown table (min / median / max over the rounds) and writes the raw runs as JSON.
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
from pathlib import Path

from bench_batching import QUESTIONS, at_once, make_engine, request, timed
from serving.cpu import process_rss_mib  # noqa: E402  (bench_serving puts the repo on the path)

# About 500 tokens of a support conversation's context (Llama 3 tokenizer: ~4.3 characters a token).
FILLER = ("Earlier in this conversation the customer explained that the parcel was left at a neighbour's door, that "
          "the tracking page still shows it as in transit, and that they would like either a replacement or a "
          "refund, whichever is faster. ") * 5


def long_prompt(i: int) -> str:
    """A ~500-token message whose first words differ per visitor, so no visitor reuses another's KV for it (the
    persona's system prompt before it is shared, as on the Space)."""
    return f"Visitor {i}: {QUESTIONS[i % len(QUESTIONS)]}\n{FILLER}"


def prompt_tokens(model: Path) -> int:
    from llama_cpp import Llama

    vocab = Llama(model_path=str(model), vocab_only=True, verbose=False)
    return len(vocab.tokenize(long_prompt(0).encode(), add_bos=False))


def worker(args) -> dict:
    """One GGUF in this process: load, one visitor, then `--visitors` at once."""
    engine = make_engine(args, slots=args.visitors)
    started = time.perf_counter()
    engine.prepare("bench")
    load_s = time.perf_counter() - started
    after_load = process_rss_mib()
    alone = timed(engine, request(long_prompt(0), "alone", args.tokens))
    group = at_once(engine, [request(long_prompt(i + 1), f"v{i}", args.tokens) for i in range(args.visitors)])
    decode_span = max(r["end"] for r in group) - min(r["first"] for r in group)
    return {"load_s": load_s, "rss_after_load_mib": after_load, "message_tokens": prompt_tokens(args.model),
            "ttft_500_s": alone["first"] - alone["start"],
            "decode_tokens_per_s_1": (alone["n_tokens"] - 1) / (alone["end"] - alone["first"]),
            "decode_tokens_per_s_n": sum(r["n_tokens"] - 1 for r in group) / decode_span,
            "last_ttft_n_s": max(r["first"] - r["start"] for r in group),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_worker(model: str, args) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, __file__, "--worker", "--model", model, "--json", out.name,
                        "--tokens", str(args.tokens), "--visitors", str(args.visitors), "--n-ctx", str(args.n_ctx),
                        "--threads", str(args.threads)], check=True)
        return json.loads(Path(out.name).read_text())


def spread(values: list[float], digits: int = 1) -> str:
    return f"{min(values):.{digits}f} / **{statistics.median(values):.{digits}f}** / {max(values):.{digits}f}"


COLUMNS = [("load s", "load_s", 2), ("RSS after load MiB", "rss_after_load_mib", 0),
           ("TTFT, 500-token prompt, s", "ttft_500_s", 2), ("decode tok/s, 1 visitor", "decode_tokens_per_s_1", 1),
           ("4 visitors: tok/s, first token to last (sum)", "decode_tokens_per_s_n", 1),
           ("last TTFT of 4, s", "last_ttft_n_s", 2), ("peak RSS MiB", "peak_rss_mib", 0)]


def report(runs: dict[str, list[dict]]) -> str:
    lines = ["| model | " + " | ".join(c[0] for c in COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for label, results in runs.items():
        lines.append(f"| {label} | " + " | ".join(spread([r[key] for r in results], digits)
                                                  for _, key, digits in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="LABEL=PATH.gguf")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report", type=Path, help="only print the table of a JSON written by --out")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        Path(args.json).write_text(json.dumps(worker(args)))
        return 0
    if args.report:
        print(report(json.loads(args.report.read_text())["runs"]))
        return 0
    models = dict(m.split("=", 1) for m in args.models)
    runs: dict[str, list[dict]] = {label: [] for label in models}
    for _ in range(args.repeats):
        for label, path in models.items():
            runs[label].append(run_worker(path, args))
            print(label, json.dumps(runs[label][-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
