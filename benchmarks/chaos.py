"""Chaos run of the batching scheduler (a script; `tests/test_chaos.py` runs a short one in CI).

N simulated visitors share one model with fewer slots for a bounded time, each doing what real visitors do:
questions of random length (some thousands of characters), Stop at a random moment, closing the tab mid-answer,
switching between their conversations (so conversations are pushed out of their slots to RAM and come back),
editing an earlier question, deleting a chat. Once, mid-run, the model's decode thread is killed (a token id
llama.cpp refuses). Checked:

- no answer ends with "stopped unexpectedly" except those running when the thread was killed (a third of the
  way in);
- every greedy answer that ran to its end is the greedy answer to its own prompt: equal to the same prompt
  answered alone after the run, or else, replayed through plain llama.cpp, within `TIE_GAP` logits of the most
  likely token at every token (`tests/greedy.py`: step shapes round differently, a wrong KV cache is far off);
- no request waits for its first token longer than the queue timeout;
- the process RSS stays within the pool's estimate of the model (weights, KV cache, compute, KV RAM store) above
  the RSS before loading, plus 64 MiB for the visitors' Python objects, and the KV RAM store within `kv_ram_mb`.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/chaos.py --visitors 8 --slots 4 --seconds 300 --seed 1

Prints the event counts, the scheduler's own counts and every violation (exit 1 if any).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from serving.backends.batched import Job  # noqa: E402
from serving.config import ServingSettings  # noqa: E402
from serving.cpu import process_rss_mib  # noqa: E402
from serving.engine import ChatRequest, Engine  # noqa: E402
from serving.errors import Busy, ModelUnavailable  # noqa: E402
from serving.generation import GenerationSettings  # noqa: E402
from serving.registry import Registry, load_registry  # noqa: E402
from tests.greedy import TIE_GAP, same_or_near_tie  # noqa: E402

SYSTEM = {"role": "system", "content": "You are the Order Assistant of an online shop's customer support. "
                                       "Answer only the customer's last message. Be concise."}
QUESTIONS = ["Where is my order?", "How do I return a broken kettle?", "Can I change my delivery address?",
             "What does shipping cost to Norway?", "My parcel arrived damaged, what now?", "Cancel order 5521.",
             "Do you price-match?", "Where is my invoice?", "How long do refunds take?", "Is the lamp in stock?"]
FILLER = "I have been waiting for a long time and I would like a clear answer about my parcel. "
UNEXPECTED = "stopped unexpectedly"
KINDS = ["answer", "stop", "leave", "edit", "delete"]
PYTHON_ALLOWANCE_MB = 64  # the visitors' threads, strings and sampler chains, on top of the pool's estimate


@dataclass
class Report:
    events: Counter = field(default_factory=Counter)
    """What the visitors did and how their answers ended."""
    violations: list[str] = field(default_factory=list)
    completed: list[tuple[list[dict], int, str, int, str]] = field(default_factory=list)
    """(messages, max_new_tokens, answer, its tokens, its finish) of every greedy answer that ran to its end."""
    max_ttft_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_budget_mb: float = 0.0
    peak_kv_store_mb: float = 0.0
    scheduler: dict = field(default_factory=dict)
    kill: tuple[float, float] | None = None
    """Monotonic times between which the deliberate kill may end running answers."""


def rss_mb() -> float:
    return process_rss_mib() or 0.0  # chaos runs on Linux: /proc is there


class Visitor:
    """One simulated visitor with two conversations, acting at random until the deadline."""

    def __init__(self, number: int, engine: Engine, model_id: str, report: Report, lock: threading.Lock,
                 seed: int):
        self.name, self.engine, self.model_id = f"v{number}", engine, model_id
        self.report, self.lock, self.rng = report, lock, random.Random(seed * 1000 + number)
        self.chats = {f"{self.name}-c{i}": [SYSTEM] for i in range(2)}
        self.plan = ["answer", "edit", "stop", "leave", "delete"]

    def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline:
                self.act()
        except Exception as err:  # noqa: BLE001 - anything else a visitor meets is a violation
            with self.lock:
                self.report.violations.append(f"{self.name}: {err!r}")

    def count(self, event: str) -> None:
        with self.lock:
            self.report.events[event] += 1

    def act(self) -> None:
        """The visitor's next action: first each kind once (so a short run sees them all), then at random."""
        kind = self.plan.pop(0) if self.plan else self.rng.choices(KINDS, [0.45, 0.2, 0.12, 0.13, 0.1])[0]
        chat_id = self.rng.choice(sorted(self.chats))  # switching conversations pushes others out of slots
        if kind == "edit":
            chat_id = max(sorted(self.chats), key=lambda c: len(self.chats[c]))
            if len(self.chats[chat_id]) < 3:  # nothing answered yet: ask now, edit later
                self.plan.insert(0, "edit")
                kind = "answer"
        if kind == "delete":
            self.engine.forget(chat_id)
            self.chats[chat_id] = [SYSTEM]
            self.count("deleted")
            return
        messages = self.chats[chat_id]
        if len(messages) > 9:  # a new chat before the context would cut turns (the replay sends them all)
            self.engine.forget(chat_id)
            messages = self.chats[chat_id] = [SYSTEM]
        if kind == "edit":  # the last question changes: the history is cut back to before it
            messages = messages[:-2]
            self.engine.history_changed(chat_id)
            self.count("edited")
        self.ask(chat_id, messages + [{"role": "user", "content": self.question()}], kind)

    def question(self) -> str:
        text = self.rng.choice(QUESTIONS)
        if self.rng.random() < 0.25:
            text = FILLER * self.rng.randint(5, 30) + text  # up to ~2,700 characters
        return text

    def ask(self, chat_id: str, messages: list[dict], kind: str) -> None:
        max_new = self.rng.randint(8, 32)
        request = ChatRequest(self.model_id, messages, GenerationSettings(temperature=0.0, max_new_tokens=max_new,
                                                                          seed=0), chat_id)
        action = kind if kind in ("stop", "leave") else "answer"
        cancel, started = threading.Event(), time.monotonic()
        if action == "stop":
            threading.Timer(self.rng.uniform(0.05, 1.5), cancel.set).start()
        text, stats, first = "", None, None
        try:
            stream = self.engine.stream(request, cancel)
            for event in stream:
                if event.kind == "token":
                    first = first or time.monotonic()
                    text += event.text
                    if action == "leave":  # the tab closes: the consumer goes away mid-answer
                        stream.close()
                        break
                stats = event.stats or stats
        except (Busy, ModelUnavailable) as err:
            self.failed(err, started)
            return
        self.finished(chat_id, messages, max_new, action, text, stats, started, first)

    def failed(self, err, started: float) -> None:
        self.count(type(err).__name__)
        if isinstance(err, ModelUnavailable):
            kill = self.report.kill
            if UNEXPECTED in err.user_message and not (kill and started <= kill[1] and time.monotonic() >= kill[0]):
                with self.lock:
                    self.report.violations.append(f"{self.name}: {err.user_message} ({err.detail}) without a kill")

    def finished(self, chat_id, messages, max_new, action, text, stats, started, first) -> None:
        with self.lock:
            self.report.max_ttft_s = max(self.report.max_ttft_s, (first or time.monotonic()) - started)
        if action == "leave":
            self.count("left")
            return
        reason = stats.finish_reason if stats else "none"
        self.count(f"{action}:{reason}")
        if reason in ("stop", "length"):
            with self.lock:
                self.report.completed.append((list(messages), max_new, text, stats.n_tokens, reason,
                                              stats.cached_prompt_tokens, stats.n_prompt_tokens))
            self.chats[chat_id] = messages + [{"role": "assistant", "content": text}]


def kill_model(engine: Engine, model_id: str, report: Report) -> None:
    """Kill the model's decode thread as a llama.cpp failure would (running answers: "stopped unexpectedly")."""
    loaded = engine.pool._loaded.get(model_id)
    if loaded is None:
        return
    model = loaded.model
    report.scheduler["before_kill"] = dict(model.scheduler.counts)
    bad = Job([model.n_vocab + 7], 4, model.sampler(GenerationSettings(temperature=0.0)), model.stop_ids,
              threading.Event())
    report.kill = (time.monotonic(), time.monotonic() + 3600)
    try:
        model.scheduler.submit(bad)
        for _ in bad.results():
            pass
    except ModelUnavailable:
        pass
    report.kill = (report.kill[0], time.monotonic() + 0.5)
    report.events["killed"] += 1


def watch(engine: Engine, model_id: str, report: Report, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        report.peak_rss_mb = max(report.peak_rss_mb, rss_mb())
        loaded = engine.pool._loaded.get(model_id)
        if loaded is not None:
            report.peak_kv_store_mb = max(report.peak_kv_store_mb, loaded.model.scheduler.saved_bytes() / 2**20)


def replay(engine: Engine, model_id: str, report: Report, tie_gap: float) -> None:
    """Every completed greedy answer against the same prompt answered alone (no conversation: nothing cached).

    llama.cpp's results depend a little on the shape of the step a token was computed in (`tests/greedy.py`), so an
    answer that differs is a violation unless every one of its tokens was within `tie_gap` logits of the most likely
    one on its own prompt (plain llama.cpp, the same repetition penalty), or the prompt answered alone with another
    prompt chunk size gives exactly that answer (the batched answer is then one that a plain, unshared computation
    of the same prompt produces)."""
    model = engine.pool._loaded[model_id].model
    model.scheduler.clear_cache()
    other_shapes = OtherShapes(engine.registry, model_id)
    try:
        for messages, max_new, answer, n_tokens, finish, cached, n_prompt in report.completed:
            settings = GenerationSettings(temperature=0.0, max_new_tokens=max_new, seed=0)
            alone, stats = engine.complete(ChatRequest(model_id, messages, settings))
            if alone == answer:
                continue
            problem = same_or_near_tie(model, messages, answer, alone, tie_gap, settings)
            if problem and other_shapes.answers(messages, settings, answer):
                problem = None
                report.events["other_chunking"] += 1
            report.events["near_tie" if problem is None else "differs"] += 1
            if problem:
                report.violations.append(f"not the prompt answered alone ({n_tokens} tokens, {finish} vs alone "
                                         f"{stats.n_tokens}, {stats.finish_reason}; max {max_new}; {cached} of "
                                         f"{n_prompt} prompt tokens came from the KV cache; {len(messages)} "
                                         f"messages): {problem}")
    finally:
        other_shapes.close()


class OtherShapes:
    """The same model alone with other prompt chunk sizes (engines made when first needed)."""

    CHUNKS = (8, 32, 128, 512)

    def __init__(self, registry: Registry, model_id: str):
        self.registry, self.model_id, self.engines = registry, model_id, {}

    def answers(self, messages: list[dict], settings: GenerationSettings, answer: str) -> bool:
        for chunk in self.CHUNKS:
            if chunk not in self.engines:
                self.engines[chunk] = Engine(self.registry, ServingSettings(slots=1, prefill_chunk=chunk,
                                                                            n_batch=max(chunk, 8)))
            if self.engines[chunk].complete(ChatRequest(self.model_id, messages, settings))[0] == answer:
                return True
        return False

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()


def run(registry: Registry, model_id: str, visitors: int = 8, slots: int = 4, seconds: float = 60.0,
        seed: int = 0, kv_ram_mb: float = 8.0, queue_timeout_s: float = 120.0, tie_gap: float = TIE_GAP) -> Report:
    settings = ServingSettings(slots=slots, max_queue=visitors, queue_timeout_s=queue_timeout_s, kv_ram_mb=kv_ram_mb,
                               ram_budget_mb=8192)
    engine, report, lock = Engine(registry, settings), Report(), threading.Lock()
    before = rss_mb()
    engine.prepare(model_id)
    model = engine.pool._loaded[model_id]
    report.rss_budget_mb = before + model.size_bytes / 2**20 + PYTHON_ALLOWANCE_MB
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(engine, model_id, report, stop), daemon=True)
    watcher.start()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=Visitor(i, engine, model_id, report, lock, seed).run, args=(deadline,))
               for i in range(visitors)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 3)
    kill_model(engine, model_id, report)
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    try:
        engine.prepare(model_id)
        report.scheduler["after_kill"] = dict(engine.pool._loaded[model_id].model.scheduler.counts)
        replay(engine, model_id, report, tie_gap)
    finally:
        engine.close()
    check_limits(report, settings, queue_timeout_s)
    return report


def check_limits(report: Report, settings: ServingSettings, queue_timeout_s: float) -> None:
    if report.max_ttft_s > queue_timeout_s:
        report.violations.append(f"a request waited {report.max_ttft_s:.1f} s > queue timeout {queue_timeout_s} s")
    if report.peak_rss_mb > report.rss_budget_mb:
        report.violations.append(f"RSS {report.peak_rss_mb:.0f} MiB > budget {report.rss_budget_mb:.0f} MiB")
    if report.peak_kv_store_mb > settings.kv_ram_mb:
        report.violations.append(f"KV RAM store {report.peak_kv_store_mb:.1f} MiB > {settings.kv_ram_mb} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kv-ram-mb", type=float, default=8.0)
    args = parser.parse_args()
    report = run(load_registry(), args.model, args.visitors, args.slots, args.seconds, args.seed, args.kv_ram_mb)
    summary = {"events": dict(report.events), "completed_and_replayed": len(report.completed),
               "max_ttft_s": round(report.max_ttft_s, 2), "peak_rss_mb": round(report.peak_rss_mb),
               "rss_budget_mb": round(report.rss_budget_mb), "peak_kv_store_mb": round(report.peak_kv_store_mb, 2),
               "scheduler": report.scheduler, "violations": report.violations}
    print(json.dumps(summary, indent=2))
    return 1 if report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
