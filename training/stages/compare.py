"""`python -m training compare MODEL_ID MODEL_ID ... --set SET`: any number of registry models answer the prompt
sets (`prompt_sets/*.yaml`), and one report puts their answers side by side.

Every model answers every prompt greedily through `serving.engine.Engine`, the app's own path (chat template,
stop rules, leak guard; an adapter entry loads over its base as the app loads it), via `answers.answer_all`.
Models run one after another, each in a fresh engine that is closed before the next model loads, so nothing of
one model is resident while another answers. Per model: load seconds, seconds per prompt (mean, median, min,
max), generated tokens per second (all its answer tokens over all its answer seconds, prompt reading included),
answers cut at the token limit, and the process's RSS before the load and its peak while that model loaded and
answered (`serving.cpu.process_rss_mib` sampled every 20 ms by a thread). Writes `report.json` and `report.md`.
Boundary: loads models only through the engine, and only after every id is known and available; never imported
by the app.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.cpu import cpu_model, process_rss_mib, usable_cpus
from serving.registry import Registry, load_registry
from training.stages.prompt_set import PromptSet, PromptSetError, load_prompt_sets, select, set_names
from training.stages.run import StageError, stage_errors, write_json_atomic
from training.stages.task_eval import md_cell

RSS_INTERVAL_S = 0.02
"""How often the peak-RSS thread reads /proc/self/status (about 50 us a read)."""

HOW_MEASURED = (
    "Each model ran alone, one after another, in a fresh engine closed before the next loaded. Load s: "
    "`Engine.prepare` (an adapter: its base, then the adapter). Seconds per prompt: request to last token. Tokens/s: "
    "all generated tokens over all answer seconds (prompt reading included, so a model with short answers shows "
    "fewer). Cut at limit: answers that reached the token limit (marked `[…]` below). RSS: the whole process's "
    "(`serving.cpu.process_rss_mib`), before the load and its peak while the model loaded and answered, sampled "
    "every {interval_ms:.0f} ms.")
"""The report's note on its numbers."""


@dataclass(frozen=True)
class CompareOptions:
    """How the models answer."""

    max_new_tokens: int = 128
    """Answer length limit (greedy decoding)."""
    rss_interval_s: float = RSS_INTERVAL_S
    """Seconds between two RSS samples."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_ids", nargs="+", metavar="MODEL_ID", help="registry ids, each once, in column order")
    parser.add_argument("--set", dest="set_name", default="categories", choices=set_names(),
                        help="prompt set (training/stages/prompt_sets/NAME.yaml), or 'all' (default: categories)")
    parser.add_argument("--out", default=None, help="report folder (default: runs/compare/SET next to the registry)")
    parser.add_argument("--max-new-tokens", type=int, default=CompareOptions.max_new_tokens,
                        help="answer length limit (default: %(default)s)")
    parser.add_argument("--registry", default=None,
                        help="registry file (default: model_registry.yaml or $IRIS_REGISTRY)")


# ---------------------------------------------------------------- checks


def check_models(registry: Registry, model_ids: list[str]) -> None:
    """Refuse, before anything loads, ids the registry does not list, ids given twice and models that cannot be
    served here (naming why)."""
    unknown = [mid for mid in model_ids if mid not in registry.models]
    if unknown:
        raise StageError(f"unknown model id{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(registry.ids())}")
    twice = sorted({mid for mid in model_ids if model_ids.count(mid) > 1})
    if twice:
        raise StageError(f"give each model once (one column each); repeated: {', '.join(twice)}")
    from serving.engine import Engine  # llama.cpp: imported only once the arguments are good

    engine = Engine(registry)
    try:
        missing = [f"{s.id} ({s.reason})" for s in map(engine.status, model_ids) if not s.available]
    finally:
        engine.close()
    if missing:
        raise StageError(f"not available here: {'; '.join(missing)}")


# ---------------------------------------------------------------- measuring


class PeakRss:
    """The process's peak resident memory (MiB) while the `with` block runs, sampled by a daemon thread every
    `interval_s` and once at each end; None where /proc is not there. A sampler misses a peak shorter than its
    interval; the model weights and KV cache it is meant to see stay resident for the whole block."""

    def __init__(self, interval_s: float = RSS_INTERVAL_S):
        self.interval_s = interval_s
        self.peak: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-rss")

    def __enter__(self) -> "PeakRss":
        self._note()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._note()

    def _sample(self) -> None:
        while not self._done.wait(self.interval_s):
            self._note()

    def _note(self) -> None:
        rss = process_rss_mib()
        if rss is not None:
            self.peak = rss if self.peak is None else max(self.peak, rss)


def timing(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per prompt (mean, median, min, max), generated tokens per second and answers cut at the limit, of
    one model's answers."""
    seconds = [a["seconds"] for a in answers]
    tokens = sum(a["tokens"] for a in answers)
    return {"prompts": len(answers), "seconds_mean": round(statistics.fmean(seconds), 3),
            "seconds_median": round(statistics.median(seconds), 3), "seconds_min": min(seconds),
            "seconds_max": max(seconds), "tokens": tokens,
            "tokens_per_s": round(tokens / sum(seconds), 2) if sum(seconds) > 0 else None,
            "cut": sum(a["finish"] == "length" for a in answers)}


def measure(registry: Registry, model_id: str, prompts: list[str], options: CompareOptions) -> dict[str, Any]:
    """Load `model_id` in a fresh engine, answer every prompt, close the engine: its numbers and answers."""
    from serving.engine import Engine, ServingError
    from training.stages.answers import answer_all

    gc.collect()  # the previous model's engine, so the baseline below is this model's starting point
    entry, engine, rss_before = registry.get(model_id), Engine(registry), process_rss_mib()
    try:
        with PeakRss(options.rss_interval_s) as peak:
            started = time.perf_counter()
            engine.prepare(model_id)
            load_s = time.perf_counter() - started
            answers = answer_all(engine, model_id, [[{"role": "user", "content": p}] for p in prompts],
                                 options.max_new_tokens)
    except ServingError as err:
        raise StageError(f"{model_id}: {err.user_message}") from None
    finally:
        engine.close()
    adapter = entry.source.adapter
    return {"id": model_id, "display_name": entry.display_name, "base": adapter and adapter.base,
            "source": entry.source.kind, "quant": entry.quant, "load_s": round(load_s, 3),
            "rss_before_mib": rss_before and round(rss_before, 1), "peak_rss_mib": peak.peak and round(peak.peak, 1),
            **timing(answers), "answers": answers}


def compare(registry: Registry, model_ids: list[str], sets: list[PromptSet], options: CompareOptions) -> dict[str, Any]:
    """Check the ids, then let each model answer every prompt of `sets`: the report (JSON-able)."""
    check_models(registry, model_ids)
    asked = [(s.name, p) for s in sets for p in s.prompts]
    models = []
    for model_id in model_ids:
        print(f"[compare] {model_id}: {len(asked)} prompts", flush=True)
        models.append(measure(registry, model_id, [p.prompt for _, p in asked], options))
    items = [{"set": name, "category": p.category, "prompt": p.prompt,
              "answers": {m["id"]: m["answers"][i] for m in models}} for i, (name, p) in enumerate(asked)]
    return {"sets": [{"name": s.name, "description": s.description, "prompts": len(s.prompts)} for s in sets],
            "max_new_tokens": options.max_new_tokens, "rss_interval_s": options.rss_interval_s,
            "host": {"cpu": cpu_model(), "usable_cpus": usable_cpus()},
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "models": [{k: v for k, v in m.items() if k != "answers"} for m in models], "items": items}


# ---------------------------------------------------------------- report


def _model_lines(models: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | over base | load s | prompts | s/prompt mean | s/prompt median (min-max) | tokens | tokens/s "
             "| cut at limit | RSS before load MiB | peak RSS MiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m in models:
        lines.append(f"| {m['id']} | {m['base'] or ''} | {m['load_s']} | {m['prompts']} | {m['seconds_mean']} "
                     f"| {m['seconds_median']} ({m['seconds_min']}-{m['seconds_max']}) | {m['tokens']} "
                     f"| {m['tokens_per_s']} | {m['cut']} | {m['rss_before_mib']} | {m['peak_rss_mib']} |")
    return lines


def _answer_cell(answer: dict[str, Any]) -> str:
    """One answer as a table cell, ending in `[…]` where the token limit cut it."""
    return md_cell(answer["text"].strip()) + (" […]" if answer["finish"] == "length" else "")


def _set_lines(prompt_set: dict[str, Any], items: list[dict[str, Any]], ids: list[str]) -> list[str]:
    lines = [f"## {prompt_set['name']} ({prompt_set['prompts']} prompts)", "", prompt_set["description"], "",
             "| # | category | prompt | " + " | ".join(ids) + " |", "| ---: | --- | --- |" + " --- |" * len(ids)]
    for n, item in enumerate((i for i in items if i["set"] == prompt_set["name"]), 1):
        cells = [_answer_cell(item["answers"][mid]) for mid in ids]
        lines.append(f"| {n} | {item['category']} | {md_cell(item['prompt'])} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """Per-model numbers, then one table per set: a row per prompt, a column per model."""
    ids = [m["id"] for m in report["models"]]
    host = report["host"]
    lines = [f"# Prompt sets: {', '.join(ids)}", "",
             f"Sets: {', '.join(s['name'] for s in report['sets'])}; greedy decoding, at most "
             f"{report['max_new_tokens']} new tokens; {host['cpu']}, {host['usable_cpus']} usable CPUs; "
             f"finished {report['finished']}.", "", *_model_lines(report["models"]), "",
             HOW_MEASURED.format(interval_ms=report["rss_interval_s"] * 1000), ""]
    for prompt_set in report["sets"]:
        lines += _set_lines(prompt_set, report["items"], ids)
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    with stage_errors("compare"):
        try:
            sets = select(load_prompt_sets(), args.set_name)
        except PromptSetError as err:
            raise StageError(str(err)) from None
        if args.max_new_tokens < 1:
            raise StageError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
        registry = load_registry(args.registry)
        out = Path(args.out) if args.out else registry.root / "runs" / "compare" / args.set_name
        report = compare(registry, args.model_ids, sets, CompareOptions(args.max_new_tokens))
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "report.json", report)
        (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
        print(f"[compare] wrote {out / 'report.md'} and report.json")
    return 0
