"""Benchmark of the serving layer (a script, not a test): engine overhead and KV prefix reuse.

1. Decode tokens/s through `serving.engine.Engine` vs raw `llama_cpp.Llama` with identical settings
   (same GGUF, n_ctx, threads, batch, mmap, prompt tokens, sampling, seed). Each run is a fresh
   process; engine and raw runs alternate so background load hits both alike.
2. Time to first token of turn 1 vs turn 8 of one conversation through the engine (prefix reuse),
   and turn 8 again after clearing the KV cache (the naive no-reuse figure).

    python benchmarks/bench_serving.py --model /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf

Prints a Markdown report (append it to benchmarks/RESULTS-serving.md) and writes raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SYSTEM = "You are the Order Assistant of an online shop. Answer the last message concisely with next steps."
QUESTION = ("My order number 48213 was supposed to arrive on Tuesday but the tracking page has not changed "
            "for three days and still says the parcel is at the sorting centre. What should I do now?")


def registry_for(model: Path, n_ctx: int):
    from serving.registry import parse_registry

    entry = {"id": "bench", "display_name": "bench", "kind": "base", "context_length": n_ctx,
             "source": {"local": {"path": str(model)}}}
    return parse_registry({"hub_owner": "bench", "models": [entry]}, REPO / "model_registry.yaml")


def settings_for(args):
    from serving.config import ServingSettings
    from serving.generation import GenerationSettings

    serving = ServingSettings(ram_budget_mb=16384, n_threads=args.threads, n_batch=args.n_batch)
    sampling = GenerationSettings(temperature=args.temperature, top_p=0.9, top_k=40, repeat_penalty=1.1,
                                  max_new_tokens=args.tokens, seed=args.seed)
    return serving, sampling


def timed_stream(chunks, count=None) -> dict:
    """Decode rate of a stream of texts, first text to last; `count()` gives the tokens if not one per text."""
    start, first, n = time.perf_counter(), None, 0
    for text in chunks:
        first = first or time.perf_counter()
        n += 1
    end = time.perf_counter()
    n = count() if count else n
    return {"n_tokens": n, "ttft_s": (first or end) - start,
            "tokens_per_s": (n - 1) / (end - first) if first and n > 1 else 0.0}


def worker_engine(args) -> dict:
    from serving.engine import ChatRequest, Engine

    serving, sampling = settings_for(args)
    engine = Engine(registry_for(args.model, args.n_ctx), serving)
    request = ChatRequest("bench", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
                          sampling)
    engine.complete(ChatRequest("bench", request.messages, sampling.merged(max_new_tokens=8)))  # load + warm up

    def texts():
        for event in engine.stream(request):
            if event.kind == "token":
                yield event.text
            elif event.kind == "done":
                result["engine_stats"] = event.stats.__dict__

    result: dict = {}
    # The leak guard may hold a piece back and send two tokens as one text: count llama.cpp's tokens.
    result.update(timed_stream(texts(), lambda: result["engine_stats"]["n_tokens"]))
    return result


def worker_raw(args) -> dict:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    serving, sampling = settings_for(args)
    llm = Llama(model_path=str(args.model), n_ctx=args.n_ctx, n_threads=serving.threads(),
                n_threads_batch=serving.threads(), n_batch=serving.n_batch, use_mmap=True, verbose=False)
    formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                                    eos_token=llm._model.token_get_text(llm.token_eos()),
                                    bos_token=llm._model.token_get_text(llm.token_bos()))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    prompt = formatter(messages=messages, date_string=serving.template_date).prompt
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    kwargs = dict(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                  repeat_penalty=sampling.repeat_penalty, seed=sampling.seed)
    for _ in llm.create_completion(prompt=tokens, max_tokens=8, stream=True, **kwargs):  # warm up, as the engine
        pass

    def texts():
        for chunk in llm.create_completion(prompt=tokens, max_tokens=sampling.max_new_tokens, stream=True, **kwargs):
            if chunk["choices"][0]["finish_reason"] is None:
                yield chunk["choices"][0]["text"]

    return {**timed_stream(texts()), "n_prompt_tokens": len(tokens)}


def worker_turns(args) -> dict:
    """TTFT of each turn of one conversation, then turn 8 again with the KV cache cleared."""
    from serving.engine import ChatRequest, Engine

    serving, sampling = settings_for(args)
    sampling = sampling.merged(max_new_tokens=args.reply_tokens)
    engine = Engine(registry_for(args.model, args.n_ctx), serving)
    engine.complete(ChatRequest("bench", [{"role": "user", "content": "warm up"}], sampling))
    scheduler = engine.pool._loaded["bench"].model.scheduler  # to clear the KV cache
    scheduler.clear_cache()  # turn 1 then evaluates its whole prompt on a warm model
    messages, turns = [{"role": "system", "content": SYSTEM}], []
    for turn in range(1, args.turns + 1):
        messages.append({"role": "user", "content": f"Turn {turn}. {QUESTION}"})
        request = ChatRequest("bench", list(messages), sampling, conversation_id="bench-conversation")
        text, stats = engine.complete(request)
        turns.append({"turn": turn, "ttft_s": stats.ttft_s, "n_prompt_tokens": stats.n_prompt_tokens})
        messages.append({"role": "assistant", "content": text})
    scheduler.clear_cache()  # forget the evaluated tokens: the naive no-reuse case
    text, stats = engine.complete(request)
    return {"turns": turns, "naive_last_ttft_s": stats.ttft_s}


WORKERS = {"engine": worker_engine, "raw": worker_raw, "turns": worker_turns}


def run_worker(kind: str, args) -> dict:
    """One fresh process running worker `kind`; returns its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", kind, "--json", out.name, *args.passthrough]
        subprocess.run(cmd, check=True, cwd=REPO)
        return json.loads(Path(out.name).read_text())


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def report(args, decode: dict[str, list[dict]], turns: list[dict]) -> str:
    rates = {kind: [r["tokens_per_s"] for r in runs] for kind, runs in decode.items()}
    ratio = statistics.median(rates["engine"]) / statistics.median(rates["raw"])
    t1 = [t["turns"][0]["ttft_s"] for t in turns]
    tn = [t["turns"][-1]["ttft_s"] for t in turns]
    naive = [t["naive_last_ttft_s"] for t in turns]
    tokens = {kind: sorted({r["n_tokens"] for r in runs}) for kind, runs in decode.items()}
    prompt = turns[0]["turns"]
    return "\n".join([
        f"model `{args.model.name}`, n_ctx {args.n_ctx}, threads {args.threads or 'auto'}, n_batch {args.n_batch}, "
        f"temperature {args.temperature}, seed {args.seed}, {args.repeats} fresh processes per side",
        "",
        "| decode | tokens/s min / median / max | tokens generated |",
        "|---|---|---|",
        f"| raw `llama_cpp.Llama` | {spread(rates['raw'])} | {tokens['raw']} |",
        f"| `Engine.stream` | {spread(rates['engine'])} | {tokens['engine']} |",
        f"| **ratio engine / raw (medians)** | **{ratio:.3f}x** | |",
        "",
        f"| time to first token (s) | min / median / max | prompt tokens |",
        "|---|---|---|",
        f"| turn 1 | {spread(t1)} | {prompt[0]['n_prompt_tokens']} |",
        f"| turn {args.turns}, prefix reuse | {spread(tn)} | {prompt[-1]['n_prompt_tokens']} |",
        f"| turn {args.turns}, KV cache cleared (naive) | {spread(naive)} | {prompt[-1]['n_prompt_tokens']} |",
        f"| **turn {args.turns} / turn 1 (medians)** | **{statistics.median(tn) / statistics.median(t1):.2f}x** "
        f"(naive {statistics.median(naive) / statistics.median(t1):.2f}x) | |",
    ])


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="GGUF file to benchmark")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None, help="default: the CPUs this process may use")
    parser.add_argument("--n-batch", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=128, help="tokens to decode per run")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per side")
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)
    args.passthrough = [a for a in (argv if argv is not None else sys.argv[1:])
                        if a not in ("--worker", args.worker, "--json", str(args.json))]
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        args.json.write_text(json.dumps(WORKERS[args.worker](args)))
        return 0
    decode: dict[str, list[dict]] = {"raw": [], "engine": []}
    for repeat in range(args.repeats):
        for kind in ("raw", "engine") if repeat % 2 == 0 else ("engine", "raw"):  # load drifts: alternate
            decode[kind].append(run_worker(kind, args))
            print(kind, decode[kind][-1], file=sys.stderr)
    turns = []
    for _ in range(args.repeats):
        turns.append(run_worker("turns", args))
        print("turns", turns[-1], file=sys.stderr)
    print(report(args, decode, turns))
    if args.json:
        args.json.write_text(json.dumps({"decode": decode, "turns": turns}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
