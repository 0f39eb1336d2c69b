"""What drafts cost a visitor: time to the first visible text and to the whole answer, streamed (1 draft) against
chosen among N drafts, on the shipped support adapter through one Engine, as Iris serves it.

Each process loads the shipped pair (bench_grounded_eval's registry: the release LoRA over the SmolLM2 Q4_1 base),
waits for the personas' pre-reads, then asks the first `--questions` hand-written held-out questions once per mode,
the modes interleaved per question so machine noise falls on both; greedy first draft, 256 new tokens at most.
Ratios are taken within a process (drafts ÷ streamed, per question, then the median), over `--processes` fresh
processes. Quality of the same modes: bench_grounded_eval.py --drafts (benchmarks/RESULTS-drafts.md).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_drafts.py --processes 3 --questions 8 --drafts 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def one_process(questions: int, drafts: int) -> dict:
    """Per question and mode: seconds to the first visible text, to the end, and the drafts written."""
    from bench_grounded_eval import ADAPTER, personas, registry, settle
    from serving.config import ServingSettings
    from serving.context.layer import ContextLayer
    from serving.engine import ChatRequest, Engine
    from serving.generation import GenerationSettings
    from training.stages.task_eval import TaskOptions, _turns, task_sets

    rows = task_sets([], TaskOptions(256, questions, ROOT / "data/support/heldout_handwritten.jsonl"))["handwritten"]
    books = {1: personas(1), drafts: personas(drafts)}
    context = ContextLayer.from_personas(books[1].personas.values())
    engines = {n: Engine(registry(2048, ADAPTER), ServingSettings.from_env(), personas=book, context=context)
               for n, book in books.items()}
    try:
        for engine in engines.values():
            settle(engine, "finetune")
        out = []
        for row in rows:
            for n, engine in engines.items():
                request = ChatRequest("finetune", _turns(row), GenerationSettings(temperature=0.0, max_new_tokens=256,
                                                                                   seed=0), persona_id=row["persona"])
                started, first, stats = time.perf_counter(), None, None
                for event in engine.stream(request):
                    if event.kind == "token" and first is None:
                        first = time.perf_counter() - started
                    elif event.kind == "done":
                        stats = event.stats
                out.append({"id": row["id"], "mode": n, "first_s": first, "total_s": time.perf_counter() - started,
                            "drafts": stats.drafts, "tokens": stats.n_tokens})
        return {"answers": out}
    finally:
        for engine in engines.values():
            engine.close()


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--drafts", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-drafts.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_process(args.questions, args.drafts)))
        return 0
    from serving.cpu import cpu_model

    runs = []
    for _ in range(args.processes):
        done = subprocess.run([sys.executable, __file__, "--child", "--questions", str(args.questions), "--drafts",
                               str(args.drafts)], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1])["answers"])
    lines = [f"host: {cpu_model()}; {args.processes} processes x {args.questions} questions, modes interleaved", "",
             "| measure | streamed (1 draft) | drafts | ratio drafts / streamed |", "| --- | ---: | ---: | ---: |"]
    for key, label in (("first_s", "time to the first visible text (s)"), ("total_s", "time to the whole answer (s)")):
        one = [a[key] for run in runs for a in run if a["mode"] == 1 and a[key] is not None]
        many = [a[key] for run in runs for a in run if a["mode"] == args.drafts and a[key] is not None]
        ratios = []
        for run in runs:  # within a process: the median over its questions of drafts / streamed
            pairs = {}
            for a in run:
                pairs.setdefault(a["id"], {})[a["mode"]] = a[key]
            per = [p[args.drafts] / p[1] for p in pairs.values() if p.get(1) and p.get(args.drafts)]
            if per:
                ratios.append(statistics.median(per))
        lines.append(f"| {label} | {summary(one)} | {summary(many)} | {summary(ratios)} |")
    written = [a["drafts"] for run in runs for a in run if a["mode"] == args.drafts]
    lines.append(f"\ndrafts written per answer in the drafts mode: {summary([float(w) for w in written])}")
    print("\n".join(lines))
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "cpu": cpu_model(), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
