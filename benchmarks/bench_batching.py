"""Benchmark of many visitors on one model (a script, not a test): continuous batching through the engine.

Each measurement runs in a fresh process, in which the configurations being compared run one after
the other on the same loaded model, so a ratio never mixes two processes:

  visitors N   one visitor alone, then N visitors at the same moment (distinct questions, one shared
               persona prompt, each its own conversation). (a) aggregate tokens/s of the N (all tokens
               generated / wall time from the requests to the last answer's end) / the same for one
               alone; (b) time to first token of the last of the N to get one / TTFT alone. Twice: warm
               (the persona prompt already cached, as on a live Space) and cold (KV cache cleared
               before the alone run and before the group: the N share one reading of the persona prompt).
  alternate K  one conversation of 6 turns alone, then K conversations taking turns (1, 2, .., K, 1, ..)
               for 6 turns each. (c) TTFT of conversation 1's 6th turn with K / alone.

ceiling      llama.cpp's batch API alone: one decode of one token for each of N sequences vs one token;
             what (a) can at most reach on this machine.
(d), one visitor's decode speed through Iris vs raw llama.cpp, is `benchmarks/bench_serving.py`.
(e) `--app`: (a) through the Gradio app over HTTP with gradio_client, N clients at once vs one (the API
returns text, so this ratio is of characters per second).

    python -m training random-model --like llama-3.2-1b --out /tmp/rand1b
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_batching.py --model /tmp/rand1b/llama-3.2-1b-random-Q4_K_M.gguf

Prints a Markdown report (for benchmarks/RESULTS-batching.md) and writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_serving import REPO, SYSTEM, registry_for

QUESTIONS = ["My order 48213 has not moved for three days; what should I do?",
             "How do I return a kettle that arrived broken?",
             "Can I change the delivery address of an order that has shipped?",
             "What does express shipping to Norway cost?",
             "The parcel came damaged and the box was wet. What now?",
             "Please cancel order 5521, I ordered the wrong size.",
             "Do you price-match if the item gets cheaper next week?",
             "Where do I find the invoice for my last purchase?"]


class FullLengthLoader:
    """The real llama.cpp loader, except that answers never end early: random weights sample an end-of-turn
    token now and then, and every answer here must run to the same length, as in the issue's figures."""

    def size(self, entry, path, settings) -> int:
        from serving.backends.llamacpp import LlamaCppLoader

        return LlamaCppLoader().size(entry, path, settings)

    def load(self, entry, path, settings):
        from serving.backends.llamacpp import LlamaCppModel

        model = LlamaCppModel(entry, path, settings)
        model.stop_ids = frozenset()
        return model


def make_engine(args, slots: int):
    from serving.config import ServingSettings
    from serving.engine import Engine

    settings = ServingSettings(ram_budget_mb=16384, n_threads=args.threads, slots=slots, max_queue=16)
    return Engine(registry_for(args.model, args.n_ctx), settings, FullLengthLoader())


def request(text: str, conversation: str | None, tokens: int, history: list | None = None):
    from serving.engine import ChatRequest
    from serving.generation import GenerationSettings

    messages = [{"role": "system", "content": SYSTEM}, *(history or []), {"role": "user", "content": text}]
    return ChatRequest("bench", messages, GenerationSettings(temperature=0.7, max_new_tokens=tokens, seed=1),
                       conversation)


def timed(engine, req) -> dict:
    start, first, stats, text = time.perf_counter(), None, None, ""
    for event in engine.stream(req):
        if event.kind == "token":
            first = first or time.perf_counter()
            text += event.text
        stats = event.stats or stats
    end = time.perf_counter()
    return {"start": start, "first": first or end, "end": end, "n_tokens": stats.n_tokens, "text": text}


def at_once(engine, requests: list) -> list[dict]:
    results: list = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = timed(engine, requests[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def alone_then_group(engine, args, tag: str) -> dict:
    alone = timed(engine, request(QUESTIONS[0], f"alone-{tag}", args.tokens))
    if tag == "cold":
        engine.pool._loaded["bench"].model.scheduler.clear_cache()
    group = at_once(engine, [request(QUESTIONS[i % len(QUESTIONS)] + f" (visitor {i})", f"v{i}-{tag}", args.tokens)
                             for i in range(args.visitors)])
    wall = max(r["end"] for r in group) - min(r["start"] for r in group)
    alone_rate = alone["n_tokens"] / (alone["end"] - alone["start"])
    group_rate = sum(r["n_tokens"] for r in group) / wall
    decode_span = max(r["end"] for r in group) - min(r["first"] for r in group)
    alone_decode = (alone["n_tokens"] - 1) / (alone["end"] - alone["first"])
    group_decode = sum(r["n_tokens"] - 1 for r in group) / decode_span
    first = alone["first"] - alone["start"]
    last_ttft = max(r["first"] - r["start"] for r in group)
    return {"alone_tokens_per_s": alone_rate, "together_tokens_per_s": group_rate,
            "aggregate_ratio": group_rate / alone_rate, "alone_decode_tokens_per_s": alone_decode,
            "together_decode_tokens_per_s": group_decode, "decode_ratio": group_decode / alone_decode,
            "alone_ttft_s": first, "last_ttft_s": last_ttft, "ttft_ratio": last_ttft / first,
            "tokens": [r["n_tokens"] for r in group]}


def worker_visitors(args) -> dict:
    """Warm: the persona prompt is cached (a live Space); cold: nothing is (the first visitors after a start)."""
    engine = make_engine(args, max(args.visitors, 1))
    engine.complete(request("warm up", "warm", 8))
    warm = alone_then_group(engine, args, "warm")
    engine.pool._loaded["bench"].model.scheduler.clear_cache()
    cold = alone_then_group(engine, args, "cold")
    engine.close()
    return {**warm, "cold": cold}


def conversation_turns(engine, names: list[str], turns: int, tokens: int) -> dict[str, list[float]]:
    """Each named conversation takes turns in order; the TTFT of every turn, by conversation."""
    history = {name: [] for name in names}
    ttfts = {name: [] for name in names}
    for turn in range(turns):
        for name in names:
            result = timed(engine, request(f"Turn {turn + 1}. {QUESTIONS[turn % len(QUESTIONS)]}", name, tokens,
                                           history[name]))
            ttfts[name].append(result["first"] - result["start"])
            history[name] += [{"role": "user", "content": f"Turn {turn + 1}. {QUESTIONS[turn % len(QUESTIONS)]}"},
                              {"role": "assistant", "content": result["text"]}]
    return ttfts


def worker_alternate(args) -> dict:
    engine = make_engine(args, 4)
    engine.complete(request("warm up", "warm", 8))
    alone = conversation_turns(engine, ["solo"], 6, args.reply_tokens)["solo"]
    engine.pool._loaded["bench"].model.scheduler.clear_cache()
    mixed = conversation_turns(engine, [f"c{i}" for i in range(args.conversations)], 6, args.reply_tokens)["c0"]
    engine.close()
    return {"alone_turn6_ttft_s": alone[-1], "mixed_turn6_ttft_s": mixed[-1],
            "turn6_ratio": mixed[-1] / alone[-1], "alone_ttfts": alone, "mixed_ttfts": mixed}


def worker_app(args) -> dict:
    """(a) through the real Gradio app over HTTP: one client alone, then N clients at once."""
    from tests.browser import free_port

    registry = Path(tempfile.mkdtemp()) / "registry.yaml"
    registry.write_text(json.dumps({"hub_owner": "bench", "models": [
        {"id": "bench", "display_name": "bench", "kind": "base", "context_length": args.n_ctx,
         "source": {"local": {"path": str(args.model)}}}],
        "defaults": {"support": ["bench"], "study": ["bench"], "compare": [["bench", "bench"]]}}))
    port = free_port()
    env = {**os.environ, "IRIS_REGISTRY": str(registry), "IRIS_SLOTS": str(max(args.visitors, 1)),
           "IRIS_N_THREADS": str(args.threads or ""), "IRIS_MAX_QUEUE": "16"}
    log = open(registry.parent / "app.log", "w")
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                           stderr=log)
    try:
        client = _connect(f"http://127.0.0.1:{port}/")
        ask = _app_call(client)
        ask(QUESTIONS[0], 8)  # load + warm up
        t0 = time.perf_counter()
        alone = ask(QUESTIONS[0], args.tokens)
        alone_rate = alone / (time.perf_counter() - t0)
        counts: list = []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda i=i: counts.append(
            ask(QUESTIONS[i % len(QUESTIONS)] + f" (visitor {i})", args.tokens, _connect(client.src))))
            for i in range(args.visitors)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        group_rate = sum(counts) / (time.perf_counter() - t0)
        return {"alone_tokens_per_s": alone_rate, "together_tokens_per_s": group_rate,
                "aggregate_ratio": group_rate / alone_rate}
    finally:
        app.terminate()
        app.wait(timeout=30)


def _connect(url: str):
    from gradio_client import Client

    deadline = time.monotonic() + 180
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:  # the app is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _app_call(client):
    """The support page's API (`/chat`); it returns the answer's text, so the app figures count characters."""
    def ask(question: str, tokens: int, own=None) -> int:
        answer = (own or client).predict(question, "order_assistant", "bench", None, 0.7, 0.9, tokens, 1.1,
                                         api_name="/chat")
        return len(answer)
    return ask


def worker_ceiling(args) -> dict:
    """What llama.cpp's batch API itself gives on this machine: one `llama_decode` holding one token of each
    of N sequences vs one token alone (the issue's reference figure), without Iris."""
    import llama_cpp as ll
    from llama_cpp import _internals as internals
    from llama_cpp._logger import set_verbose

    set_verbose(False)
    model = internals.LlamaModel(path_model=str(args.model), params=ll.llama_model_default_params(), verbose=False)
    params = ll.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 1024 * 8, 256, 256, 8
    params.n_threads = params.n_threads_batch = args.threads
    ctx = internals.LlamaContext(model=model, params=params, verbose=False)
    batch, pos = ll.llama_batch_init(256, 0, 1), [0] * 8

    def decode(seqs: list[int]) -> float:
        for i, seq in enumerate(seqs):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = 100 + i, pos[seq], 1, True
            batch.seq_id[i][0] = seq
            pos[seq] += 1
        batch.n_tokens = len(seqs)
        start = time.perf_counter()
        ll.llama_decode(ctx.ctx, batch)
        return time.perf_counter() - start

    for seq in range(8):
        decode([seq] * 32)  # a prompt in each sequence
    steps = {n: statistics.median(decode(list(range(n))) for _ in range(args.tokens)) for n in (1, 4, 8)}
    ll.llama_batch_free(batch)
    ctx.close()
    return {f"ceiling_{n}": n * steps[1] / steps[n] for n in (4, 8)} | {"step_ms": {n: 1000 * t for n, t in
                                                                                     steps.items()}}


WORKERS = {"visitors": worker_visitors, "alternate": worker_alternate, "app": worker_app,
           "ceiling": worker_ceiling}


def run_worker(kind: str, args, *extra: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", kind, "--json", out.name, *args.passthrough, *extra]
        subprocess.run(cmd, check=True, cwd=REPO)
        return json.loads(Path(out.name).read_text())


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48, help="answer length for (a)/(b)")
    parser.add_argument("--reply-tokens", type=int, default=24, help="answer length per turn for (c)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--app", action="store_true", help="also run (a) through the Gradio app with gradio_client")
    parser.add_argument("--worker", choices=WORKERS)
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.worker:
        args.json.write_text(json.dumps(WORKERS[args.worker](args)))
        return
    args.passthrough = ["--model", str(args.model), "--n-ctx", str(args.n_ctx), "--threads", str(args.threads),
                        "--tokens", str(args.tokens), "--reply-tokens", str(args.reply_tokens)]
    runs: dict[str, list[dict]] = {}
    plan = [("llama.cpp batch API", "ceiling"), ("visitors 4", "visitors", "--visitors", "4"), ("visitors 8", "visitors", "--visitors", "8"),
            ("alternate 2", "alternate", "--conversations", "2"), ("alternate 4", "alternate", "--conversations", "4")]
    if args.app:
        plan.append(("app visitors 4", "app", "--visitors", "4"))
    for _ in range(args.repeats):
        for name, kind, *extra in plan:
            runs.setdefault(name, []).append(run_worker(kind, args, *extra))
            print(name, json.dumps(runs[name][-1])[:300], file=sys.stderr, flush=True)
    report(args, runs)


def report(args, runs: dict[str, list[dict]]) -> None:
    print(f"Model {args.model.name}, {args.threads} threads, {args.repeats} fresh processes each; "
          "median (min–max).\n")
    print("| measurement | alone | together | ratio | target |\n| --- | --- | --- | --- | --- |")
    for name, rows in runs.items():
        if "ceiling_4" in rows[0]:
            for n in (4, 8):
                print(f"| {name}: {n} tokens of {n} sequences per decode vs 1 (no Iris) | "
                      f"{spread([r['step_ms'][1] if 1 in r['step_ms'] else r['step_ms']['1'] for r in rows])} ms | "
                      f"{spread([r['step_ms'][n] if n in r['step_ms'] else r['step_ms'][str(n)] for r in rows])} ms "
                      f"| **{spread([r[f'ceiling_{n}'] for r in rows])}** | (the ceiling) |")
        if "decode_ratio" in rows[0]:
            print(f"| {name}: aggregate decode tokens/s | {spread([r['alone_decode_tokens_per_s'] for r in rows])} | "
                  f"{spread([r['together_decode_tokens_per_s'] for r in rows])} | "
                  f"**{spread([r['decode_ratio'] for r in rows])}** | ≥ 2.2 at 4 |")
        if "aggregate_ratio" in rows[0]:
            unit = "characters/s over HTTP" if name.startswith("app") else "tokens/s (prompt reading included)"
            print(f"| {name}: end-to-end {unit} | "
                  f"{spread([r['alone_tokens_per_s'] for r in rows])} | "
                  f"{spread([r['together_tokens_per_s'] for r in rows])} | "
                  f"**{spread([r['aggregate_ratio'] for r in rows])}** | |")
        if "cold" in rows[0]:
            cold = [r["cold"] for r in rows]
            print(f"| {name}, cold cache: end-to-end tokens/s | {spread([r['alone_tokens_per_s'] for r in cold])} | "
                  f"{spread([r['together_tokens_per_s'] for r in cold])} | "
                  f"**{spread([r['aggregate_ratio'] for r in cold])}** | |")
            print(f"| {name}, cold cache: TTFT of the last visitor (s) | {spread([r['alone_ttft_s'] for r in cold])}"
                  f" | {spread([r['last_ttft_s'] for r in cold])} | **{spread([r['ttft_ratio'] for r in cold])}** "
                  "| ≤ 2 at 4 |")
        if "ttft_ratio" in rows[0]:
            print(f"| {name}: TTFT of the last visitor (s) | {spread([r['alone_ttft_s'] for r in rows])} | "
                  f"{spread([r['last_ttft_s'] for r in rows])} | **{spread([r['ttft_ratio'] for r in rows])}** "
                  "| ≤ 2 at 4 |")
        if "turn6_ratio" in rows[0]:
            print(f"| {name}: 6th-turn TTFT (s) | {spread([r['alone_turn6_ttft_s'] for r in rows])} | "
                  f"{spread([r['mixed_turn6_ttft_s'] for r in rows])} | **{spread([r['turn6_ratio'] for r in rows])}**"
                  " | ≤ 1.3 |")
    out = REPO / "benchmarks" / "RESULTS-batching.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
