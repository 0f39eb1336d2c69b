"""How far step-shape rounding moves a greedy answer, against how far a wrong KV cache moves it (sets TIE_GAP).

One chaos run (benchmarks/chaos.py: visitors, Stop, evictions, copies, a crash) gives a few dozen greedy answers
computed in every step shape the scheduler makes. Each is replayed on its own prompt through plain llama.cpp
(`tests.greedy.greedy_deficit`): its worst token's distance below the model's top logit is the rounding noise. The
control replays each answer on another answer's prompt (another visitor's conversation, the KV a scheduler bug would
hand over): that distance is what a wrong cache looks like. `tests.greedy.TIE_GAP` must sit between the two.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/greedy_noise.py --seed 1 --seconds 60

Prints both distributions (min / median / 95th percentile / max, logits) as JSON; run it in fresh processes with
several seeds and merge by hand into RESULTS-greedy-noise.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.chaos import run  # noqa: E402
from serving.config import ServingSettings  # noqa: E402
from serving.engine import Engine  # noqa: E402
from serving.registry import load_registry  # noqa: E402
from tests.greedy import TIE_GAP, greedy_deficit  # noqa: E402


def spread(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {"n": 0}
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return {"n": len(values), "min": round(values[0], 2), "median": round(statistics.median(values), 2),
            "p95": round(p95, 2), "max": round(values[-1], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    registry = load_registry()
    report = run(registry, args.model, visitors=8, slots=4, seconds=args.seconds, seed=args.seed, kv_ram_mb=4,
                 tie_gap=float("inf"))  # every answer is kept: this script measures, the chaos test judges
    engine = Engine(registry, ServingSettings(slots=1))
    try:
        engine.prepare(args.model)
        model = engine.pool._loaded[args.model].model
        answers = [(messages, answer) for messages, _, answer, *_ in report.completed if answer.strip()]
        noise = [greedy_deficit(model.path, model.prompt_tokens(m), a).logits for m, a in answers]
        wrong = []
        for i, (messages, answer) in enumerate(answers):  # the next answer to another question is the wrong KV
            other = next((m for m, _ in answers[i + 1:] + answers[:i] if m[-1] != messages[-1]), None)
            if other is not None:
                wrong.append(greedy_deficit(model.path, model.prompt_tokens(other), answer).logits)
    finally:
        engine.close()
    worst = sorted(zip(noise, (a for _, a in answers)), reverse=True)[:3]
    print(json.dumps({"seed": args.seed, "seconds": args.seconds, "answers": len(answers),
                      "events": dict(report.events), "tie_gap": TIE_GAP,
                      "rounding": spread(noise), "wrong_kv": spread(wrong),
                      "rounding_above_tie_gap": sum(n > TIE_GAP for n in noise),
                      "wrong_kv_within_tie_gap": sum(w <= TIE_GAP for w in wrong),
                      "worst_rounding": [[round(n, 2), a] for n, a in worst],
                      "rounding_values": [round(n, 2) for n in noise], "wrong_kv_values": [round(w, 2) for w in wrong]},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
