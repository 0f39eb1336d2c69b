"""Benchmark (a script, not a test): N visitors through the Gradio app over HTTP vs the same N in-process.

Both sides serve the same GGUF with the same settings (N slots, greedy, answers that run to exactly `--tokens`
tokens: `ignore_eos`) and the same requests (the order assistant persona, so the same grounded system turn and the
same pre-read persona prefixes), and both stream: in-process through `Engine.stream_batches` (what the pages and `/chat`
call), over HTTP through `/chat` with one gradio_client per visitor. Aggregate rate = N x tokens / wall time from
the requests to the last answer's end. The ratio app / in-process is what the app's path (Gradio queue, HTTP
streaming, JSON, the API function) costs the model. Each worker is a fresh process that loads both sides at once
(the idle one costs nothing) and runs their rounds interleaved in-process, app, app, in-process, ... so that both
see the machine's drift alike (a shared box's speed wanders by tens of percent within minutes); min/median/max over
all pairs and the median of each process.

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


class InProcess:
    """N visitors in this process, streaming as the pages do, each asking a fresh one-off conversation."""

    def __init__(self, args):
        sys.path.insert(0, str(REPO))
        from app import load_context
        from serving.config import ServingSettings
        from serving.engine import Engine
        from serving.registry import load_registry

        registry = load_registry(write_registry(Path(tempfile.mkdtemp()), args.model, args.n_ctx, args.tokens))
        personas, context = load_context()  # as app.py: /chat's persona writes a grounded system turn
        self.engine = Engine(registry, ServingSettings(slots=args.visitors, ram_budget_mb=16384, max_queue=16),
                             personas=personas, context=context)
        self.settings, self.asked = registry.get("bench").generation, 0

    def ask(self, i: int) -> None:
        """What `/chat` does: the persona, the question, a one-off conversation forgotten afterwards."""
        from serving.engine import ChatRequest

        self.asked += 1
        request = ChatRequest("bench", [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], self.settings,
                              f"api-{self.asked}", persona_id="order_assistant")
        try:
            for _ in self.engine.stream_batches(request):
                pass
        finally:
            self.engine.forget(request.conversation_id)

    def close(self) -> None:
        self.engine.close()


class ThroughApp:
    """N gradio_client visitors calling the app's `/chat` over loopback HTTP (the app in its own process)."""

    def __init__(self, args):
        sys.path.insert(0, str(REPO))
        from tests.browser import free_port

        folder, port, self.tokens = Path(tempfile.mkdtemp()), free_port(), args.tokens
        env = {**os.environ, "IRIS_REGISTRY": str(write_registry(folder, args.model, args.n_ctx, args.tokens)),
               "IRIS_SLOTS": str(args.visitors), "IRIS_MAX_QUEUE": "16", "IRIS_RAM_BUDGET_MB": "16384"}
        with open(folder / "app.log", "w") as log:
            self.app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env,
                                        stdout=log, stderr=log)
        self.clients = [connect(f"http://127.0.0.1:{port}/") for _ in range(args.visitors)]

    def ask(self, i: int) -> None:
        self.clients[i].predict(QUESTIONS[i % len(QUESTIONS)], "order_assistant", "bench", None, 0.0, 0.9,
                                self.tokens, 1.1, api_name="/chat")

    def close(self) -> None:
        self.app.terminate()
        self.app.wait(timeout=30)


def worker(args) -> list[tuple[float, float]]:
    """Both sides loaded at once in one fresh process (the idle side costs nothing), then `--rounds` rounds in the
    order in-process, app, app, in-process, ... so both see the machine's drift alike; (in-process, app) aggregate
    tokens/s per pair of rounds."""
    sides = [InProcess(args), ThroughApp(args)]
    try:
        for side in sides:
            side.ask(0)  # load + warm up (and the persona prefixes read)
        rates: dict[int, list[float]] = {0: [], 1: []}
        for r in range(args.rounds):
            for which in ((0, 1) if r % 2 == 0 else (1, 0)):
                wall = together([lambda i=i, s=sides[which]: s.ask(i) for i in range(args.visitors)])
                rates[which].append(args.visitors * args.tokens / wall)
        return list(zip(rates[0], rates[1]))
    finally:
        for side in sides:
            side.close()


def fresh(args) -> list[tuple[float, float]]:
    """One worker's pairs, measured in a fresh process."""
    command = [sys.executable, __file__, "--worker", "--model", str(args.model), "--tokens", str(args.tokens),
               "--visitors", str(args.visitors), "--n-ctx", str(args.n_ctx), "--rounds", str(args.rounds)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ,
                                                                                  "OMP_WAIT_POLICY": "PASSIVE"})
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--repeats", type=int, default=3, help="fresh worker processes")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each side per worker")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    rows = []
    for repeat in range(1, args.repeats + 1):
        for engine, app in fresh(args):
            rows.append((repeat, engine, app, app / engine))
            print(f"process {repeat}: in-process {engine:.1f} tokens/s, app {app:.1f} tokens/s, "
                  f"ratio {app / engine:.3f}", flush=True)
    ratios = sorted(r for *_, r in rows)
    per_process = [statistics.median(r for p, *_, r in rows if p == repeat) for repeat in range(1, args.repeats + 1)]
    print(f"\n{args.visitors} visitors x {args.tokens} tokens, {args.model.name}, {os.cpu_count()} CPUs "
          f"({cpu_model()})\n")
    print("| process | round | in-process tokens/s | app tokens/s | app / in-process |\n| --- | --- | --- | --- | --- |")
    for i, (repeat, engine, app, ratio) in enumerate(rows):
        print(f"| {repeat} | {i % args.rounds + 1} | {engine:.1f} | {app:.1f} | {ratio:.3f} |")
    print(f"\nratio over all pairs: min {ratios[0]:.3f} / median {statistics.median(ratios):.3f} / max {ratios[-1]:.3f}; "
          f"per-process medians {', '.join(f'{m:.3f}' for m in per_process)}; "
          f"sum app / sum in-process {sum(r[2] for r in rows) / sum(r[1] for r in rows):.3f}")


if __name__ == "__main__":
    main()
