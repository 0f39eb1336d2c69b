"""SmolLM2 on study work: the base, the study fine-tune trained directly, and the one trained in two stages (general
chat first, then the same study data: `base_checkpoint: run:smollm2-135m-general-stage`).

Every answer is greedy through the engine, as the app serves it (the installed GGUFs of `python -m training rebuild
smollm2-135m-study` and `... smollm2-135m-study-two-stage`). Three measures:

- held-out exam rows (prepare/test.jsonl of the study run, the same split for both recipes): the share of answers
  that contain the reference's key line (`Answer: ...`, or `True.`/`False.`), i.e. the answer the data teaches;
- the study prompts of training/stages/eval_prompts.yaml, answered side by side (text in the results);
- the study tools' structured outputs (quiz, flashcards, drill, through `serving.study.tools` exactly as the Study
  page calls them) on fact-base topics: parse rate, duplicate questions within one output, and answer keys that are
  wrong: a multiple-choice key is checkable when its question matches a fact of data/study/facts.yaml (two or more
  content words shared) and one option holds that fact's answer; it is wrong when the key names another option. A key
  whose explanation names another option's text but not the keyed one's is counted apart (self-contradiction).

    python benchmarks/bench_two_stage.py --out benchmarks/RESULTS-two-stage.md
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from serving.engine import ChatRequest, Engine  # noqa: E402
from serving.registry import load_registry  # noqa: E402
from serving.study.inputs import DrillRequest, FlashcardsRequest, QuizRequest, StudyInputError  # noqa: E402
from serving.study.tools import StructuredOutputError, StudyTools  # noqa: E402

MODELS = ("smollm2-135m-instruct", "smollm2-135m-study", "smollm2-135m-study-two-stage")
TOPICS = ("osmosis", "Newton's laws of motion", "the French Revolution")
GREEDY = {"temperature": 0.0, "seed": 0}
STOP_WORDS = set("a an the of to in is are and or what which who how why does do by for on with its it that this "
                 "be as at from called".split())


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOP_WORDS and len(w) > 2}


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def key_line(answer: str) -> str | None:
    """The line a held-out answer is checked by: `Answer: ...`, or the `True.`/`False.` verdict; None otherwise."""
    lines = answer.strip().split("\n")
    found = next((line for line in lines if line.startswith("Answer:")), None)
    return found or (lines[0] if lines[0] in ("True.", "False.") else None)


def heldout(engine: Engine, model: str, rows: list[dict], max_new_tokens: int) -> dict:
    checked = [(r["messages"][0]["content"], key_line(r["messages"][1]["content"])) for r in rows]
    checked = [(q, k) for q, k in checked if k]
    settings = engine.registry.get(model).generation.merged(max_new_tokens=max_new_tokens, **GREEDY)
    hits = 0
    for question, key in checked:
        text, _ = engine.complete(ChatRequest(model, [{"role": "user", "content": question}], settings))
        hits += norm(key) in norm(text)
    return {"rows": len(checked), "key_line_found": hits}


def prompts(engine: Engine, model: str, max_new_tokens: int) -> list[tuple[str, str]]:
    study = yaml.safe_load((REPO / "training" / "stages" / "eval_prompts.yaml").read_text())["study"]
    settings = engine.registry.get(model).generation.merged(max_new_tokens=max_new_tokens, **GREEDY)
    return [(p, engine.complete(ChatRequest(model, [{"role": "user", "content": p}], settings))[0]) for p in study]


def duplicates(texts: list[str]) -> int:
    seen, dup = set(), 0
    for text in map(norm, texts):
        dup += text in seen
        seen.add(text)
    return dup


def check_key(question, facts: list[dict]) -> tuple[bool, bool, bool]:
    """(checkable, wrong by the fact base, explanation names another option instead of the keyed one)."""
    options = [norm(o) for o in question.options]
    keyed = options["ABCD".index(question.answer)]
    scored = sorted(((len(words(question.question) & words(f["question"] + " " + f["why"])), i)
                     for i, f in enumerate(facts)), reverse=True)
    fact = facts[scored[0][1]] if scored[0][0] >= 2 else None
    holders = [i for i, o in enumerate(options) if fact and norm(fact["answer"]) and norm(fact["answer"]) in o]
    checkable = len(holders) == 1
    wrong = checkable and options[holders[0]] != keyed
    explanation = norm(question.explanation)
    others = [o for o in options if o != keyed and len(o) > 3 and o in explanation]
    contradicts = bool(others) and (len(keyed) <= 3 or keyed not in explanation)
    return checkable, wrong, contradicts


def tool_outputs(tools: StudyTools, model: str, facts: list[dict], max_new_tokens: int,
                 topics: tuple[str, ...] = TOPICS) -> dict:
    overrides = {**GREEDY, "max_new_tokens": max_new_tokens}
    calls = {
        "quiz": lambda t: tools.quiz(model, QuizRequest(topic=t, n_questions=4, difficulty="easy"), overrides),
        "flashcards": lambda t: tools.flashcards(model, FlashcardsRequest(topic=t, n_cards=5), overrides),
        "drill": lambda t: tools.drill(model, DrillRequest(topic=t, difficulty="easy"), overrides),
    }
    out = {}
    for name, call in calls.items():
        stats = {"asked": 0, "parsed": 0, "questions": 0, "duplicates": 0, "checkable_keys": 0, "wrong_keys": 0,
                 "contradicting_keys": 0, "seconds": 0.0, "samples": []}
        for topic in topics:
            stats["asked"] += 1
            started = time.perf_counter()
            try:
                result = call(topic)
            except (StructuredOutputError, StudyInputError) as err:
                stats["samples"].append(f"{topic}: unparsed ({getattr(err, 'user_message', str(err))[:60]})")
                continue
            finally:
                stats["seconds"] += time.perf_counter() - started
            stats["parsed"] += 1
            texts, choice = _questions(name, result)
            stats["questions"] += len(texts)
            stats["duplicates"] += duplicates(texts)
            for question in choice:
                checkable, wrong, contradicts = check_key(question, facts)
                stats["checkable_keys"] += checkable
                stats["wrong_keys"] += wrong
                stats["contradicting_keys"] += contradicts
            stats["samples"].append(f"{topic}: {texts[0][:90] if texts else ''}")
        stats["seconds"] = round(stats["seconds"], 1)
        out[name] = stats
    return out


def _questions(name: str, result) -> tuple[list[str], list]:
    """Question texts of one output (for duplicates) and its multiple-choice questions (for the keys)."""
    if name == "quiz":
        return [q.question for q in result.questions], list(result.questions)
    if name == "flashcards":
        return [c.front for c in result.cards], []
    texts = [q.question for q in result.multiple_choice] + [q.statement for q in result.true_false]
    return texts + [q.question for q in result.short_answer], list(result.multiple_choice)


def from_runs(registry, models: list[str]):
    """The registry with each listed model served from its run's exported GGUF (runs/<id>/export) where it has not
    been installed (a rebuild stopped after export)."""
    changed = dict(registry.models)
    for model in models:
        entry, record = registry.get(model), REPO / "runs" / model / "export" / "stage.json"
        if entry.source.local is not None and not registry.local_path(entry).exists() and record.exists():
            gguf = json.loads(record.read_text())["metrics"]["gguf"]
            source = entry.source.model_copy(update={"local": entry.source.local.model_copy(update={"path": gguf})})
            changed[model] = entry.model_copy(update={"source": source})
            print(f"{model}: served from {gguf}", flush=True)
    return registry.model_copy(update={"models": changed})


def host_cpu() -> str:
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def render(report: dict) -> str:
    lines = ["# Two-stage vs direct study fine-tune of SmolLM2-135M (CPU)", "",
             f"Command: `{report['command']}`; host: {report['host']}; {report['date']}. Greedy, {report.get('via', 'through the engine (llama.cpp GGUFs)')}.",
             "", "## Held-out exam rows (answers containing the reference's key line)", "",
             "| model | rows | key line found | held-out loss (first 32 test rows) |", "| --- | ---: | ---: | ---: |"]
    for model, r in report["heldout"].items():
        lines.append(f"| {model} | {r['rows']} | {r['key_line_found']} ({100 * r['key_line_found'] / max(r['rows'], 1):.0f}%)"
                     f" | {r.get('heldout_loss_32', 'n/a')} |")
    lines += ["", "## Study tools' structured outputs (" + report["topics"] + ")", "",
              "| model | tool | parsed | questions | duplicate questions | checkable keys | wrong keys | "
              "explanation contradicts key | seconds |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model, tools in report["tools"].items():
        for tool, s in tools.items():
            lines.append(f"| {model} | {tool} | {s['parsed']}/{s['asked']} | {s['questions']} | {s['duplicates']} | "
                         f"{s['checkable_keys']} | {s['wrong_keys']} | {s['contradicting_keys']} | {s['seconds']} |")
    lines += ["", "## Study prompts (eval_prompts.yaml), first 200 characters", ""]
    for model, answers in report["prompts"].items():
        lines += [f"**{model}**", ""] + [f"- {p} -> {a[:200]!r}" for p, a in answers] + [""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--heldout-rows", type=int, default=24)
    parser.add_argument("--topics", default="|".join(TOPICS), help="study-tool topics, |-separated")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="held-out rows and study prompts")
    parser.add_argument("--tool-tokens", type=int, default=1000,
                        help="token limit of one structured output (the schema's text limits shrink to fit it)")
    parser.add_argument("--test", type=Path, default=REPO / "runs" / "smollm2-135m-study" / "prepare" / "test.jsonl",
                        help="held-out exam rows (the study run's split)")
    parser.add_argument("--hf", action="store_true",
                        help="held-out rows and study prompts only, from the merged models in transformers")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.hf:
        report = {"command": "python " + " ".join(["benchmarks/bench_two_stage.py", *sys.argv[1:]]), "host": host_cpu(),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "topics": "not run",
                  "via": "in transformers from the merged models (float32)"}
        hf_main(args, [json.loads(line) for line in args.test.read_text().splitlines()][:args.heldout_rows], report)
        print(render(report))
        return 0
    registry = from_runs(load_registry(), args.models.split(","))
    facts = yaml.safe_load((REPO / "data" / "study" / "facts.yaml").read_text())
    test = [json.loads(line) for line in args.test.read_text().splitlines()][:args.heldout_rows]
    engine = Engine(registry)
    tools = StudyTools(engine)
    report = {"command": "python " + " ".join(["benchmarks/bench_two_stage.py", *sys.argv[1:]]), "host": host_cpu(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "topics": args.topics, "heldout": {}, "tools": {}, "prompts": {}}
    try:
        for model in args.models.split(","):
            report["heldout"][model] = heldout(engine, model, test, args.max_new_tokens)
            report["tools"][model] = tool_outputs(tools, model, facts, args.tool_tokens, tuple(args.topics.split("|")))
            report["prompts"][model] = prompts(engine, model, args.max_new_tokens)
            print(json.dumps({model: [report["heldout"][model], report["tools"][model]]}, default=str), flush=True)
            write(report, args.out)  # after each model: a cut-short run still leaves what it measured
    finally:
        engine.close()
    print(render(report))
    return 0


def hf_main(args: argparse.Namespace, test: list[dict], report: dict) -> dict:
    """`--hf`: held-out key lines and study prompts from the merged models in transformers (no GGUF needed: the
    fast path of `training experiment`, same template and greedy decoding with the app's repetition penalty)."""
    from training.stages.evaluate import heldout_loss
    from training.stages.experiment import hf_answers

    base = str(REPO / "models" / "smollm2-135m-instruct-hf")
    study = yaml.safe_load((REPO / "training" / "stages" / "eval_prompts.yaml").read_text())["study"]
    checked = [(r["messages"][0]["content"], key_line(r["messages"][1]["content"])) for r in test]
    checked = [(q, k) for q, k in checked if k]
    report.update({"heldout": {}, "prompts": {}, "tools": {}})
    for model in args.models.split(","):
        folder = base if model == "smollm2-135m-instruct" else str(REPO / "runs" / model / "merge" / "model")
        texts = hf_answers(folder, base, [[{"role": "user", "content": q}] for q, _ in checked] +
                           [[{"role": "user", "content": p}] for p in study], args.max_new_tokens)
        hits = sum(norm(k) in norm(t) for (_, k), t in zip(checked, texts))
        loss = heldout_loss(folder, base, test[:32], model)["loss"]  # the rows of the training runs' eval curve
        report["heldout"][model] = {"rows": len(checked), "key_line_found": hits, "heldout_loss_32": loss}
        report["prompts"][model] = list(zip(study, texts[len(checked):]))
        print(json.dumps({model: report["heldout"][model]}), flush=True)
        write(report, args.out)
    return report


def write(report: dict, out: Path | None) -> None:
    if out:
        out.write_text(render(report), encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
