"""`python -m training experiment MODEL_ID --grid KEY=V1,V2 ...`: a grid of recipe overrides, each run
through the normal stages, compared in one table and one plot.

Keys are dotted paths into the registry recipe (`lora.r`, `sft.learning_rate`, `datasets[0].rows`,
`method`); every run's recipe is validated by the registry's own `Recipe` model and the TRL/peft key
check before anything trains, so a bad key fails at once, named. Each run lives in
runs/experiments/<model-id>/<run-name>/ and goes prepare -> train -> merge as `rebuild` runs them, then
an eval, in a fresh process (so its peak memory is its own); it ends with result.json, and a run that
has one is skipped, so the command resumes where it stopped.

The eval is the merged model's held-out loss and the support task metric from greedy transformers
answers (no GGUF: fast on a GPU box without llama.cpp). `--export` runs the real export and eval stages
instead (the GGUF through llama.cpp, `--task-rows` questions per task set, and the judge when `--judge` is
given). A run is finished when its result.json comes from the same kind of eval: so a run trained and
evaluated on a GPU box is finished on a CPU box by the same command with `--export` (its prepare and train
stages are up to date and skipped; merge runs again when its model folder did not travel). This module knows
nothing about training itself: it edits recipes, calls stages and tabulates their records.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from serving.registry import ModelEntry, Recipe, Registry, load_registry
from training.stages.run import Run, StageError, stage_errors, write_json_atomic

RESULT = "result.json"
COLUMNS = ["run", "heldout_loss", "fact_recall", "all_facts", "judge", "tokens_per_s", "peak_memory_gib",
           "train_s", "wall_s", "adapter_mb", "trainable_params", "trainable_percent", "steps", "final_train_loss",
           "final_eval_loss"]
_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


@dataclass(frozen=True)
class Options:
    """How each run of the grid is run (the same for every run)."""

    registry: str | None
    """Registry file (None: the default)."""
    model_id: str
    """Registry id whose recipe the overrides change."""
    folder: Path
    """runs/experiments/<model-id>/: one sub-folder per run, plus the table and the plot."""
    max_steps: int | None = None
    """Stop training after this many steps (smoke runs)."""
    max_new_tokens: int = 96
    """Answer length for the task metric."""
    heldout_rows: int = 200
    """Held-out rows for the loss and the task metric."""
    export: bool = False
    """Run the GGUF export and the llama.cpp eval stage (slow) instead of the transformers eval."""
    judge: str | None = None
    """Judge for the eval stage (only with `export`)."""
    task_rows: int | None = None
    """Task-metric questions per held-out set in the eval stage (only with `export`; None: the stage's default)."""
    attn: str = "auto"
    """Attention implementation for training (`auto`: picked by the machine and the run's length)."""


# ---------------------------------------------------------------- overrides


class OverrideError(StageError):
    """A `--grid` key or value the recipe cannot take; the message names it."""


def parse_value(text: str) -> Any:
    """`16` -> 16, `2e-4` -> 0.0002 (YAML would keep it a string), `qlora` -> 'qlora', `true` -> True."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_grid(specs: list[str]) -> dict[str, list[Any]]:
    """`["lora.r=16,64", "method=lora,qlora"]` -> {"lora.r": [16, 64], "method": ["lora", "qlora"]}."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise OverrideError(f"--grid {spec!r}: expected KEY=VALUE[,VALUE...], e.g. lora.r=16,64")
        if key.strip() in grid:
            raise OverrideError(f"--grid: key {key.strip()!r} given twice")
        grid[key.strip()] = [parse_value(v.strip()) for v in values.split(",")]
    return grid


def _path(key: str) -> list[str | int]:
    parts = [(name or int(index)) for name, index in _KEY_PART.findall(key)]
    if not parts or "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") != key:
        raise OverrideError(f"--grid key {key!r}: expected a dotted path such as lora.r or datasets[0].rows")
    return parts


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` (dotted path, `[i]` for list items) in the recipe dict `data`; refuses a missing list item."""
    *parents, last = _path(key)
    node: Any = data
    for part in parents:
        node = _child(node, part, key)
    if isinstance(last, int):
        _child(node, last, key)
    elif not isinstance(node, dict):
        raise OverrideError(f"--grid key {key!r}: {last!r} is not inside a section")
    node[last] = value


def _child(node: Any, part: str | int, key: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            size = len(node) if isinstance(node, list) else 0
            raise OverrideError(f"--grid key {key!r}: item [{part}] does not exist (the recipe has {size})")
        return node[part]
    if not isinstance(node, dict):
        raise OverrideError(f"--grid key {key!r}: {part!r} is not inside a section")
    return node.setdefault(part, {})


def get_key(data: dict[str, Any], key: str) -> Any:
    """The recipe's value at `key`, or None where it is unset."""
    node: Any = data
    for part in _path(key):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def recipe_with(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """The recipe with `overrides` applied, validated like a registry recipe (schema, then TRL/peft keys)."""
    from pydantic import ValidationError

    from training.sft.config import RecipeKeyError, check_recipe_keys

    data = recipe.model_dump(mode="json")
    for key, value in overrides.items():
        set_key(data, key, value)
    try:
        changed = Recipe.model_validate(data)
        check_recipe_keys(changed.sft, changed.lora)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'recipe'}: {e['msg']}" for e in err.errors())
        raise OverrideError(f"--grid {_shown(overrides)}: {problems}") from None
    except RecipeKeyError as err:
        raise OverrideError(f"--grid {_shown(overrides)}: {err}") from None
    return changed


def _shown(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "(no override)"


def plan_runs(grid: dict[str, list[Any]], recipe: Recipe, one_at_a_time: bool) -> list[dict[str, Any]]:
    """The overrides of each run: every combination, or the recipe itself plus one factor changed at a time."""
    if not one_at_a_time:
        return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    current = recipe.model_dump(mode="json")
    runs: list[dict[str, Any]] = [{}]
    runs += [{key: value} for key, values in grid.items() for value in values if value != get_key(current, key)]
    return runs


def run_name(overrides: dict[str, Any]) -> str:
    """A folder name for a run: `recipe` for no override, else e.g. `lora.r-16_datasets0.rows-1000`."""
    if not overrides:
        return "recipe"
    return "_".join(re.sub(r"[^A-Za-z0-9._-]", "", f"{k}-{v}") for k, v in overrides.items())


# ---------------------------------------------------------------- one run


def run_one(options: Options, overrides: dict[str, Any]) -> dict[str, Any]:
    """Prepare, train, merge and evaluate one run; writes and returns its result (meant for a fresh process)."""
    from training.stages import merge, prepare, train

    registry = load_registry(options.registry)
    entry = registry.get(options.model_id)
    run = _open(registry, entry, recipe_with(entry.recipe, overrides), options.folder / run_name(overrides))
    prepare.prepare(run)
    train.train(run, max_steps=options.max_steps, attn=options.attn)
    merge.merge(run)
    evaluation = _export_eval(run, options) if options.export else _quick_eval(run, options)
    wall = sum(_stage_seconds(run).values()) + evaluation.pop("eval_s", 0.0)
    result = {"run": run.dir.name, "overrides": overrides, "eval": eval_kind(options), **evaluation,
              **_train_numbers(run), "wall_s": round(wall, 1)}
    write_json_atomic(run.dir / RESULT, result)
    return result


def eval_kind(options: Options) -> str:
    """"llama.cpp" (the export and eval stages) or "transformers" (the quick eval): what a result.json came from."""
    return "llama.cpp" if options.export else "transformers"


def finished(options: Options, overrides: dict[str, Any]) -> bool:
    """The run has a result from the eval these options ask for (a result without "eval" predates llama.cpp runs)."""
    path = options.folder / run_name(overrides) / RESULT
    return path.exists() and json.loads(path.read_text()).get("eval", "transformers") == eval_kind(options)


def _open(registry: Registry, entry: ModelEntry, recipe: Recipe, folder: Path) -> Run:
    folder.mkdir(parents=True, exist_ok=True)
    return Run(registry=registry, entry=entry.model_copy(update={"recipe": recipe}), dir=folder)


def _stage_seconds(run: Run) -> dict[str, float]:
    records = {stage: run.stage_record(stage) for stage in ("prepare", "train", "merge", "export", "eval")}
    return {stage: record["seconds"] for stage, record in records.items() if record}


def _train_numbers(run: Run) -> dict[str, Any]:
    from training.sft.trainer import read_loss_csv

    metrics, csv_path = run.upstream("train")["metrics"], run.dir / "train" / "loss.csv"
    train_rows, eval_rows = read_loss_csv(csv_path, "loss"), read_loss_csv(csv_path, "eval_loss")
    peak = metrics.get("peak_gpu_allocated_gib", metrics["peak_cpu_rss_gib"])
    adapter = sum(p.stat().st_size for p in (run.dir / "train" / "adapter").iterdir())
    return {"tokens_per_s": metrics["tokens_per_s"], "peak_memory_gib": round(peak, 3),
            "memory_kind": "gpu_allocated" if "peak_gpu_allocated_gib" in metrics else "cpu_rss",
            "train_s": round(metrics["train_runtime_s"], 1), "adapter_mb": round(adapter / 1e6, 2),
            "trainable_params": metrics.get("trainable_params"), "trainable_percent": metrics.get("trainable_percent"),
            "steps": metrics["global_step"], "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
            "final_eval_loss": eval_rows[-1]["eval_loss"] if eval_rows else None}


def _quick_eval(run: Run, options: Options) -> dict[str, Any]:
    from training.stages.evaluate import heldout_loss
    from training.stages.task_metric import task_metric
    from training.stages.prepare import read_jsonl

    started = time.perf_counter()
    rows = read_jsonl(run.dir / "prepare" / "test.jsonl")[:options.heldout_rows]
    model_dir, base = str(run.dir / "merge" / "model"), run.base_checkpoint()
    heldout = heldout_loss(model_dir, base, rows, "fine-tune")
    task = task_metric(lambda _who, questions: hf_answers(model_dir, base, questions, options.max_new_tokens),
                       rows, who=("finetune",))
    seconds = time.perf_counter() - started
    write_json_atomic(run.dir / "quick_eval.json", {"heldout": heldout, "task": task, "seconds": round(seconds, 1)})
    return {"heldout_loss": heldout["loss"], **_task_numbers(task), "judge": None, "eval_s": seconds}


def hf_answers(model_dir: str, base_checkpoint: str, conversations: list[list[dict]], max_new_tokens: int,
               batch_size: int = 32) -> list[str]:
    """Greedy answers of a transformers model (no GGUF, no llama.cpp): the experiment grid's fast path.

    The prompt is the family chat template with the generation prompt; decoding is greedy with the
    app's default repetition penalty (transformers' variant of it, so texts can differ slightly from
    llama.cpp's). Conversations go `batch_size` at a time, left-padded; the GPU is used when there is one.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from serving.generation import GenerationSettings
    from serving.progress import ProgressBar
    from training.families import of_tokenizer
    from training.sft.trainer import load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(base_checkpoint)
    stop = sorted({tokenizer.convert_tokens_to_ids(of_tokenizer(tokenizer).turn_end), tokenizer.eos_token_id} - {None})
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.to(device).eval()
    penalty = GenerationSettings().repeat_penalty
    texts = []
    for start in ProgressBar(range(0, len(conversations), batch_size), desc="answering (transformers)", leave=False):
        prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in conversations[start:start + batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=penalty,
                                 eos_token_id=stop, pad_token_id=tokenizer.pad_token_id or stop[0])
        texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [t.strip() for t in texts]


def _export_eval(run: Run, options: Options) -> dict[str, Any]:
    from training.stages import evaluate, export

    export.export(run)
    rows = {"task_rows": options.task_rows} if options.task_rows is not None else {}
    record = evaluate.evaluate(run, max_new_tokens=options.max_new_tokens, heldout_rows=options.heldout_rows,
                               judge=options.judge, **rows)["metrics"]
    report = json.loads((run.dir / "eval" / "report.json").read_text())
    judge = (record.get("judge_means") or {}).get("finetune")
    return {"heldout_loss": record["heldout"]["finetune"]["loss"], **_task_numbers(report.get("task")), "judge": judge}


def _task_numbers(task: dict[str, Any] | None) -> dict[str, float | None]:
    metric = (task or {}).get("metric", {}).get("finetune", {})
    return {"fact_recall": metric.get("fact_recall"), "all_facts": metric.get("all_facts")}


def _run_in_fresh_process(options: Options, overrides: dict[str, Any]) -> None:
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=run_one, args=(options, overrides))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise StageError(f"run {run_name(overrides)} failed (exit code {process.exitcode}); see its output above; "
                         "finished runs are kept, run the command again to resume")


# ---------------------------------------------------------------- the grid


def experiment(options: Options, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run every run that has no result yet (each in a fresh process); write and return the table rows."""
    registry = load_registry(options.registry)
    entry = registry.get(options.model_id)
    for overrides in runs:
        recipe_with(entry.recipe, overrides)  # every run validated before the first one trains
    for number, overrides in enumerate(runs, 1):
        name = run_name(overrides)
        if finished(options, overrides):
            print(f"[experiment] {number}/{len(runs)} {name}: finished earlier, skipped", flush=True)
            continue
        print(f"[experiment] {number}/{len(runs)} {name}: {_shown(overrides)}", flush=True)
        _run_in_fresh_process(options, overrides)
    results = [json.loads((options.folder / run_name(o) / RESULT).read_text()) for o in runs]
    write_tables(results, options.folder)
    plot_runs(results, options.folder, options.model_id)
    return results


def write_tables(results: list[dict[str, Any]], folder: Path) -> None:
    """results.csv and results.md: one row per run, override columns first."""
    keys = list(dict.fromkeys(k for r in results for k in r["overrides"]))
    header = ["run", *keys, *COLUMNS[1:]]
    rows = [[r["run"], *(r["overrides"].get(k, "") for k in keys), *(r.get(c) for c in COLUMNS[1:])] for r in results]
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in rows]
    (folder / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _format(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_runs(results: list[dict[str, Any]], folder: Path, title: str) -> Path:
    """loss_curves.png: every run's train (solid) and eval (dashed) loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.sft.trainer import draw_curves

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for result in results:
        draw_curves(ax, folder / result["run"] / "train" / "loss.csv", result["run"])
    ax.set(xlabel="step", ylabel="loss (assistant tokens)", title=f"{title}: train (solid) and eval (dashed) loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = folder / "loss_curves.png"
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_id", help="registry id whose recipe the grid changes")
    parser.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                        help="recipe key and its values, e.g. lora.r=16,64 sft.learning_rate=2e-4,5e-5 "
                             "datasets[0].rows=1000,3000 method=lora,qlora (repeatable)")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="the recipe as is plus one run per other value of each key (default: every combination)")
    parser.add_argument("--registry", default=None, help="registry file (default: model_registry.yaml or $IRIS_REGISTRY)")
    parser.add_argument("--runs-dir", default=None, help="parent of experiments/ (default: runs/ next to the registry)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop each training run after this many steps")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="answer length for the task metric")
    parser.add_argument("--heldout-rows", type=int, default=200, help="held-out rows for loss and task metric")
    parser.add_argument("--export", action="store_true", help="export each run to GGUF and eval through llama.cpp (slow)")
    parser.add_argument("--judge", default=None, help="eval judge (with --export; see `eval --help`)")
    parser.add_argument("--task-rows", type=int, default=None,
                        help="task-metric questions per held-out set (with --export; default: the eval stage's)")
    parser.add_argument("--attn", default="auto",
                        help="attention implementation for every run (auto picks by run length, so runs of different "
                             "lengths may differ; name one, e.g. sdpa, to compare tokens/s like for like)")


def main(args: argparse.Namespace) -> int:
    with stage_errors("experiment"):
        registry = load_registry(args.registry)
        entry = registry.get(args.model_id)
        if entry.recipe is None or entry.recipe.method == "scratch":
            raise StageError(f"{entry.id} has no fine-tuning recipe to vary")
        if args.judge and not args.export:
            raise StageError("--judge needs --export (the judge reads the eval stage's answers)")
        if args.task_rows is not None and not args.export:
            raise StageError("--task-rows needs --export (the transformers eval asks every --heldout-rows question)")
        runs_dir = Path(args.runs_dir) if args.runs_dir else registry.root / "runs"
        options = Options(registry=args.registry, model_id=entry.id, folder=runs_dir / "experiments" / entry.id,
                          max_steps=args.max_steps, max_new_tokens=args.max_new_tokens,
                          heldout_rows=args.heldout_rows, export=args.export, judge=args.judge,
                          task_rows=args.task_rows, attn=args.attn)
        runs = plan_runs(parse_grid(args.grid), entry.recipe, args.one_at_a_time)
        results = experiment(options, runs)
        print(f"[experiment] {len(results)} runs: {options.folder / 'results.md'}, {options.folder / 'loss_curves.png'}")
    return 0
