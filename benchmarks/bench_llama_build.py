"""Decode speed of llama.cpp builds side by side (a script, not a test): native vs Iris's builds.

Each build is a llama-cpp-python wheel unpacked into its own folder (`pip install --no-deps --target DIR
WHEEL`); every run is a fresh process with that folder first on PYTHONPATH, generating greedily from
the same prompt with the same GGUF, threads and batch. Builds alternate round by round so background
load hits them alike; the script reports min/median/max tokens/s per build and the median ratio of
each build to the first one (the reference, e.g. `native`).

    python benchmarks/bench_llama_build.py --model /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf \\
        --build native=/tmp/variants/native/site --build host=/tmp/variants/host/site \\
        --build portable=/tmp/variants/portable/site --rounds 5

Build the folders with scripts/install_llama_cpp.py's flags (`--print-cmake-args [--profile portable]`)
or CMAKE_ARGS="" for llama.cpp's own -march=native default.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from serving.cpu import cpu_model  # noqa: E402

CHILD = r"""
import json, sys, time, llama_cpp
model, n_tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=model, n_ctx=512, n_threads=threads, n_threads_batch=threads, n_batch=256,
                      verbose=False)
prompt = llm.tokenize(b"The quick brown fox jumps over the lazy dog. Once upon a time", add_bos=True)
llm.eval(prompt)
start, produced = time.perf_counter(), 0
for token in llm.generate(prompt, temp=0.0, reset=True):
    if produced == 0:
        first = time.perf_counter()
    produced += 1
    if produced >= n_tokens:
        break
end = time.perf_counter()
info = llama_cpp.llama_print_system_info().decode()
print(json.dumps({"tokens_per_s": (produced - 1) / (end - first), "system_info": info}))
"""


def run_once(site: Path, model: Path, tokens: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), str(tokens), str(threads)], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--build", action="append", required=True, help="NAME=SITE_DIR (first = reference)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    builds = dict(b.split("=", 1) for b in args.build)
    results: dict[str, list[float]] = {name: [] for name in builds}
    info: dict[str, str] = {}
    for _ in range(args.rounds):
        for name, site in builds.items():
            out = run_once(Path(site), args.model, args.tokens, args.threads)
            if "error" in out:
                print(f"{name}: {out['error']}", file=sys.stderr)
                continue
            results[name].append(out["tokens_per_s"])
            info[name] = out["system_info"].strip()
    reference = next(iter(builds))
    ref_median = statistics.median(results[reference]) if results[reference] else float("nan")
    print(f"CPU: {cpu_model()}; model {args.model.name}; {args.tokens} tokens greedy, {args.threads} threads, "
          f"{args.rounds} rounds in fresh processes, builds alternating\n")
    print("| build | tokens/s min | median | max | median ÷ " + reference + " |\n| --- | ---: | ---: | ---: | ---: |")
    for name, values in results.items():
        if values:
            print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {max(values):.2f} | "
                  f"{statistics.median(values) / ref_median:.3f} |")
        else:
            print(f"| {name} | failed | | | |")
    print()
    for name, text in info.items():
        print(f"- {name}: `{text}`")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "results": results, "system_info": info}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
