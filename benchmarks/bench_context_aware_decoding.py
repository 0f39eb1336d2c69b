"""Would context-aware decoding make the shipped support adapter read its context? A probe, not a serving path.

Context-aware decoding (Shi et al. 2023, "Trusting Your Evidence: Hallucinate Less with Context-aware Decoding")
samples each token from (1 + alpha) * logits(with context) - alpha * logits(without context), so what the context
adds counts more than what the model would say anyway; `beta` keeps only tokens whose with-context probability is
at least beta times the best one (the usual plausibility cut). The failure it targets is ours: the fine-tune
answers the training template nearest a question (the standard 30-day window) instead of the line of its context
that answers it (the members' 60 days).

For each held-out question the script first asks the Engine as a visitor would (greedy, one draft, the persona's
context written by the context layer) and records the exact prompt tokens the scheduler was given: with context,
and the persona prompt alone. It then decodes both prompts side by side with llama-cpp-python (one `Llama` per
prompt: the SmolLM2 Q4_1 base with the release adapter), greedy over the combined logits with the app's repeat
penalty (1.1 over the last 64 answer tokens), and scores every setting with the eval stage's task metric.
`alpha 0` decodes the with-context prompt alone: it must reproduce the Engine's answers (a check of the probe).

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 IRIS_MAX_QUEUE=64 python benchmarks/bench_context_aware_decoding.py \
        --rows data/support/heldout_handwritten.jsonl --settings 0,0 0.5,0.1 1,0.1 --out /tmp/cad-hw.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_grounded_eval as grounded  # noqa: E402
from serving.backends import llamacpp  # noqa: E402
from serving.backends.llamacpp import PENALTY_LAST_N  # noqa: E402
from serving.config import ServingSettings  # noqa: E402
from serving.context.layer import ContextLayer, question_of  # noqa: E402
from serving.cpu import cpu_model  # noqa: E402
from serving.engine import ChatRequest, Engine  # noqa: E402
from serving.generation import GenerationSettings  # noqa: E402
from serving.personas import load_personas  # noqa: E402
from training.stages.answers import greedy  # noqa: E402
from training.stages.prepare import read_jsonl  # noqa: E402
from training.stages.task_eval import SUMMARY_KEYS, _turns, given_text, persona_rows  # noqa: E402
from training.stages.task_metric import cell_score  # noqa: E402

REPEAT_PENALTY = GenerationSettings().repeat_penalty


class Served(NamedTuple):
    """What the Engine served the fine-tune from: the base GGUF (the adapter rides on it) and its stop tokens."""

    gguf: str
    stop_ids: frozenset[int]


def engine_prompts(rows: list[dict], max_new_tokens: int) -> tuple[list[dict], list[str], Served]:
    """Per row: the Engine's answer, its sources (refs, and the article labels it named), the order numbers the
    lookup did not find (unknown or malformed) and the prompt tokens with and without context; the texts each answer
    was given (for the invented-fact count); what the fine-tune was served from."""
    captured: list[list[int]] = []
    submit = llamacpp.LlamaCppModel.submit

    def recording(self, prompt, *args, **kwargs):
        captured.append(list(prompt))
        return submit(self, prompt, *args, **kwargs)

    llamacpp.LlamaCppModel.submit = recording
    context = ContextLayer.from_personas(load_personas().personas.values())
    engine = Engine(grounded.registry(2048, grounded.ADAPTER), ServingSettings.from_env(),
                    personas=grounded.personas(1), context=context)
    try:
        grounded.settle(engine, "finetune")
        records = []
        for row in rows:
            turns = _turns(row)
            text, stats = engine.complete(ChatRequest("finetune", turns, greedy(max_new_tokens),
                                                      persona_id=row["persona"]))
            with_context = captured[-1]
            system = {"role": "system", "content": engine.personas.get(row["persona"]).system_prompt}  # no context
            engine.complete(ChatRequest("finetune", [system, *turns], greedy(1)))
            persona = engine.personas.get(row["persona"])
            orders = engine.context.find_orders(persona, question_of([t["content"] for t in turns if t["role"] == "user"]))
            records.append({"engine": text, "sources": [s.ref for s in stats.sources],
                            "articles": [s.title for s in stats.sources if s.kind == "article"],
                            "not_found": [*orders.unknown, *orders.malformed], "context": with_context,
                            "plain": captured[-1]})
        given = [given_text(engine, row, rec["sources"]) for row, rec in zip(rows, records)]
        model = engine.pool._loaded["finetune"].model
        served = Served(str(model.base.path), frozenset(model.stop_ids))
    finally:
        engine.close()
        llamacpp.LlamaCppModel.submit = submit
    return records, given, served


class Decoder:
    """Two llama.cpp contexts of the base + adapter: one reads the prompt with context, the other without."""

    def __init__(self, served: Served, adapter: str, threads: int):
        from llama_cpp import Llama

        def make():
            return Llama(model_path=served.gguf, lora_path=adapter, n_ctx=2048, n_threads=threads, verbose=False)

        self.ctx, self.plain = make(), make()
        self.stops = served.stop_ids

    @staticmethod
    def _logits(llm) -> np.ndarray:
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float32)

    def _read(self, llm, tokens: list[int]) -> np.ndarray:
        llm.reset()
        llm.eval(tokens)
        return self._logits(llm)

    def answer(self, record: dict, alpha: float, beta: float, max_new_tokens: int) -> str:
        """Greedy over (1 + alpha) * with - alpha * without, tokens under beta * the best probability cut."""
        with_ctx = self._read(self.ctx, record["context"])
        without = self._read(self.plain, record["plain"]) if alpha else None
        out: list[int] = []
        for _ in range(max_new_tokens):
            logits = (1 + alpha) * with_ctx - alpha * without if alpha else with_ctx.copy()
            if alpha and beta:
                logits[with_ctx < with_ctx.max() + np.log(beta)] = -np.inf
            for token in set(out[-PENALTY_LAST_N:]):  # llama.cpp's penalty: divide a positive logit, multiply a negative
                logits[token] = logits[token] / REPEAT_PENALTY if logits[token] > 0 else logits[token] * REPEAT_PENALTY
            token = int(np.argmax(logits))
            if token in self.stops:
                break
            out.append(token)
            self.ctx.eval([token])
            with_ctx = self._logits(self.ctx)
            if alpha:
                self.plain.eval([token])
                without = self._logits(self.plain)
        return self.ctx.detokenize(out).decode("utf-8", "replace").strip()


def summary(score: dict) -> dict:
    return {k: score.get(k) for k in SUMMARY_KEYS if k in score}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=ROOT / "data/support/heldout_handwritten.jsonl")
    parser.add_argument("--settings", nargs="+", default=["0,0", "0.5,0.1", "1,0.1"],
                        help="alpha,beta pairs to decode with (alpha 0: the with-context prompt alone)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cad.json"))
    args = parser.parse_args()
    rows = persona_rows(read_jsonl(args.rows))
    records, given, served = engine_prompts(rows, args.max_new_tokens)
    report = {"command": " ".join(sys.argv), "cpu": cpu_model(), "python": platform.python_version(),
              "rows": str(args.rows), "n": len(rows),
              "engine": {"score": summary(cell_score([r["engine"] for r in records], rows, given)),
                         "texts": [r["engine"] for r in records]}}
    print("engine", report["engine"]["score"], flush=True)
    decoder = Decoder(served, str(grounded.ADAPTER), args.threads)
    for setting in args.settings:
        alpha, beta = map(float, setting.split(","))
        started = time.perf_counter()
        texts = [decoder.answer(rec, alpha, beta, args.max_new_tokens) for rec in records]
        score = summary(cell_score(texts, rows, given))
        same = sum(text == rec["engine"] for text, rec in zip(texts, records))
        report[setting] = {"alpha": alpha, "beta": beta, "seconds": round(time.perf_counter() - started),
                           "score": score, "same_as_engine": same, "texts": texts}
        print(setting, report[setting]["seconds"], "s", score, f"{same} of {len(rows)} answers as the Engine's",
              flush=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
