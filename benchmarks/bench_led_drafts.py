"""Drafts led by a passage's heading: does naming the section first make the shipped adapter read it? A probe.

The drafts Iris ships (serving/context/drafts.py) sample four answers and show the one its sources back best; they
rarely hold a fact the greedy answer missed (RESULTS-drafts.md: best of six drafts with the answer key, 54%). This
probe writes the drafts differently: one greedy answer per passage the context layer sent, each started for the
model with "According to <article> > <section>: " (the passage's heading as the context shows it), so the model
continues from a named section instead of picking the nearest training template; plus the plain greedy answer. The
shown draft is chosen as Iris chooses (`drafts.choose`: fewest unbacked figures, then relevance to the question), and
a variant keeps the plain answer whenever it declines or says the order is not found (so a lead cannot talk the model
out of an honest "not covered"). No led drafts when the question names an order the lookup does not know or a
malformed number: there the answer is that it was not found. "led only" leaves the plain answer out of the choice.

Prompts are the Engine's own (recorded as bench_context_aware_decoding.py does); the led answers are decoded with
llama-cpp-python over the same base + adapter, greedy, the app's repeat penalty.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 IRIS_MAX_QUEUE=64 python benchmarks/bench_led_drafts.py \
        --rows data/support/heldout_handwritten.jsonl --out /tmp/led-hw.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_context_aware_decoding as cad  # noqa: E402
import bench_grounded_eval as grounded  # noqa: E402
from serving.context import check, drafts  # noqa: E402
from serving.cpu import cpu_model  # noqa: E402
from training.stages.prepare import read_jsonl  # noqa: E402
from training.stages.task_eval import persona_rows  # noqa: E402
from training.stages.task_metric import cell_score, says_not_covered, says_not_found  # noqa: E402


def lead_of(label: str) -> str:
    """The words a led draft starts with: a passage's place as the context names it (`Passage.label`)."""
    return f"According to {label}: "


def led(decoder: cad.Decoder, record: dict, lead: str, max_new_tokens: int) -> str:
    """A greedy answer to `record`'s with-context prompt whose first words are `lead`."""
    tokens = decoder.ctx.tokenize(lead.encode(), add_bos=False, special=False)
    return (lead + decoder.answer({**record, "context": record["context"] + tokens}, 0, 0, max_new_tokens)).strip()


def declines(text: str) -> bool:
    return says_not_covered(text) or says_not_found(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=ROOT / "data/support/heldout_handwritten.jsonl")
    parser.add_argument("--leads", type=int, default=4, help="led drafts per answer: the first N passages sent")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/led-drafts.json"))
    args = parser.parse_args()
    rows = persona_rows(read_jsonl(args.rows))
    records, given, served = cad.engine_prompts(rows, args.max_new_tokens)
    decoder = cad.Decoder(served, str(grounded.ADAPTER), args.threads)
    shown: dict[str, list[str]] = {"streamed": [], "led only, chosen": [], "plain + led, chosen": [],
                                   "plain + led, chosen, declines kept": []}
    every = []
    started = time.perf_counter()
    for row, record, text in zip(rows, records, given):
        question = row["messages"][-2]["content"]
        labels = [] if record["not_found"] else record["articles"][: args.leads]  # "not found" is the answer
        plain = record["engine"]
        leads = [led(decoder, record, lead_of(label), args.max_new_tokens) for label in labels]
        led_only = [(t, check.check_answer(t, text, question)) for t in leads]
        candidates = [(plain, check.check_answer(plain, text, question)), *led_only]
        chosen = candidates[drafts.choose(candidates, text, question)][0]
        shown["streamed"].append(plain)
        shown["led only, chosen"].append(led_only[drafts.choose(led_only, text, question)][0] if leads else plain)
        shown["plain + led, chosen"].append(chosen)
        shown["plain + led, chosen, declines kept"].append(plain if declines(plain) else chosen)
        every.append({"id": row.get("id"), "plain": plain, "leads": leads})
    seconds = round(time.perf_counter() - started)
    report = {"command": " ".join(sys.argv), "cpu": cpu_model(), "python": platform.python_version(),
              "rows": str(args.rows), "n": len(rows), "seconds": seconds,
              "scores": {name: cad.summary(cell_score(texts, rows, given)) for name, texts in shown.items()},
              "shown": shown, "drafts": every}
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"{len(rows)} questions, {seconds} s of led drafts; {cpu_model()}")
    for name, score in report["scores"].items():
        print(f"  {name:38}", score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
