"""Benchmark (a script, not a test): N visitors through the Gradio app over HTTP vs the same N in-process.

Both sides serve the same GGUF with the same settings (N slots, greedy, answers that run to exactly `--tokens`
tokens: `ignore_eos`) and the same requests (the order assistant persona, so the same grounded system turn and the
same pre-read persona prefixes), and both stream: in-process through `Engine.stream_batches` (what the pages and `/chat`
call), over HTTP through `/chat` with one gradio_client per visitor. Aggregate rate = N x tokens / wall time from
the requests to the last answer's end. The ratio app / in-process is what the app's path (Gradio queue, HTTP
streaming, JSON, the API function) costs the model. Each repeat runs in fresh processes, in-process first then the
app, so a ratio never mixes two machines' moods more than it must; min/median/max over repeats.

    python -m training random-model --like llama-3.2-1b --out /tmp/rand1b
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_app_path.py --model /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf

Prints a Markdown table (for benchmarks/RESULTS-app-path.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batching import QUESTIONS, _connect as connect  # noqa: E402  the same questions, one connect helper
def write_registry(folder: Path, model: Path, n_ctx: int, tokens: int) -> Path:
    path = folder / "registry.yaml"
    entry = {"id": "bench", "display_name": "bench", "kind": "base", "context_length": n_ctx,
             "source": {"local": {"path": str(model)}},
             "generation": {"temperature": 0.0, "max_new_tokens": tokens, "ignore_eos": True, "seed": 0}}
    path.write_text(json.dumps({"hub_owner": "bench", "models": [entry],
                                "defaults": {"support": ["bench"], "study": ["bench"],
                                             "compare": [["bench", "bench"]]}}))
    return path


def together(calls) -> float:
    """Run the calls at once from threads; wall seconds until the last returns."""
    threads = [threading.Thread(target=call) for call in calls]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def worker_engine(args) -> float:
    """Aggregate tokens/s of N visitors in-process, streaming as the pages do."""
    sys.path.insert(0, str(REPO))
    from app import load_context
    from serving.config import ServingSettings
    from serving.engine import ChatRequest, Engine
    from serving.registry import load_registry

    registry = load_registry(write_registry(Path(tempfile.mkdtemp()), args.model, args.n_ctx, args.tokens))
    personas, context = load_context()  # as app.py: /chat's persona writes a grounded system turn
    engine = Engine(registry, ServingSettings(slots=args.visitors, ram_budget_mb=16384, max_queue=16),
                    personas=personas, context=context)
    settings = registry.get("bench").generation

    def ask(i: int) -> None:  # what /chat sends: the persona, the question, a one-off conversation
        request = ChatRequest("bench", [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], settings,
                              f"c{i}", persona_id="order_assistant")
        for _ in engine.stream_batches(request):
            pass

    ask(0)  # load + warm up
    wall = together([lambda i=i: ask(i) for i in range(args.visitors)])
    engine.close()
    return args.visitors * args.tokens / wall


def worker_app(args) -> float:
    """Aggregate tokens/s of N gradio_client visitors calling the app's `/chat` over loopback HTTP."""
    sys.path.insert(0, str(REPO))
    from tests.browser import free_port

    folder = Path(tempfile.mkdtemp())
    port = free_port()
    env = {**os.environ, "IRIS_REGISTRY": str(write_registry(folder, args.model, args.n_ctx, args.tokens)),
           "IRIS_SLOTS": str(args.visitors), "IRIS_MAX_QUEUE": "16", "IRIS_RAM_BUDGET_MB": "16384"}
    with open(folder / "app.log", "w") as log:
        app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                               stderr=log)
    try:
        clients = [connect(f"http://127.0.0.1:{port}/") for _ in range(args.visitors)]

        def ask(i: int) -> None:
            clients[i].predict(QUESTIONS[i % len(QUESTIONS)], "order_assistant", "bench", None, 0.0, 0.9,
                               args.tokens, 1.1, api_name="/chat")

        ask(0)  # load + warm up
        wall = together([lambda i=i: ask(i) for i in range(args.visitors)])
        return args.visitors * args.tokens / wall
    finally:
        app.terminate()
        app.wait(timeout=30)


def fresh(args, side: str) -> float:
    """One side's aggregate rate, measured in a fresh process."""
    command = [sys.executable, __file__, "--worker", side, "--model", str(args.model), "--tokens", str(args.tokens),
               "--visitors", str(args.visitors), "--n-ctx", str(args.n_ctx)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ,
                                                                                  "OMP_WAIT_POLICY": "PASSIVE"})
    return float(out.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description="N visitors through the app vs in-process")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["engine", "app"])
    args = parser.parse_args()
    if args.worker:
        print(worker_engine(args) if args.worker == "engine" else worker_app(args))
        return
    rows = []
    for _ in range(args.repeats):
        engine, app = fresh(args, "engine"), fresh(args, "app")
        rows.append((engine, app, app / engine))
        print(f"in-process {engine:.1f} tokens/s, app {app:.1f} tokens/s, ratio {app / engine:.3f}", flush=True)
    ratios = sorted(r for _, _, r in rows)
    print(f"\n{args.visitors} visitors x {args.tokens} tokens, {args.model.name}, {os.cpu_count()} CPUs "
          f"({cpu_model()})\n")
    print("| repeat | in-process tokens/s | app tokens/s | app / in-process |\n| --- | --- | --- | --- |")
    for i, (engine, app, ratio) in enumerate(rows, 1):
        print(f"| {i} | {engine:.1f} | {app:.1f} | {ratio:.3f} |")
    print(f"\nratio min {ratios[0]:.3f} / median {statistics.median(ratios):.3f} / max {ratios[-1]:.3f}")


if __name__ == "__main__":
    main()
