"""The model pool on the real demo GGUFs: RAM-budget LRU eviction, concurrent answers, Busy."""

import threading
import time

import pytest

from serving.config import ServingSettings
from serving.backends.llamacpp import LlamaCppLoader, estimate_bytes
from serving.engine import Busy, ChatRequest, Engine
from serving.generation import GenerationSettings
from tests.greedy import same_or_near_tie

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24, seed=0)


def ask(model_id: str, text: str = "Where is my order?") -> ChatRequest:
    return ChatRequest(model_id, [{"role": "user", "content": text}], GREEDY)


def long_answer(model_id: str) -> ChatRequest:
    """A request that holds its slot until it is closed: it cannot end by itself before 900 tokens."""
    return ChatRequest(model_id, [{"role": "user", "content": "Write"}],
                       GenerationSettings(temperature=1.0, max_new_tokens=900, seed=0, ignore_eos=True))


def make_engine(registry, budget_models: float, max_queue: int = 4, **kw) -> Engine:
    settings = ServingSettings(max_queue=max_queue, **kw)
    sizes = [LlamaCppLoader().size(registry.get(m), registry.local_path(registry.get(m)), settings)
             for m in ("demo-base", "demo-support")]
    budget_mb = max(sizes) * budget_models / 2**20
    return Engine(registry, settings.model_copy(update={"ram_budget_mb": budget_mb}))


def loaded(engine: Engine, model_id: str):
    return engine.pool._loaded[model_id].model


def test_estimate_counts_the_file_and_the_kv_cache(demo_paths):
    path = demo_paths["demo-base"]
    small, large = estimate_bytes(path, 256), estimate_bytes(path, 1024)
    assert path.stat().st_size < small < large


def test_switching_back_does_not_reload_when_both_fit(registry, demo_paths):
    engine = make_engine(registry, budget_models=2.5)
    try:
        engine.complete(ask("demo-base"))
        first = loaded(engine, "demo-base")
        engine.complete(ask("demo-support"))
        engine.complete(ask("demo-base"))
        assert loaded(engine, "demo-base") is first
        assert engine.pool.loaded_ids() == ["demo-support", "demo-base"]  # least recently used first
    finally:
        engine.close()


def test_least_recently_used_model_is_unloaded_to_fit_the_budget(registry, demo_paths):
    engine = make_engine(registry, budget_models=1.2)
    try:
        engine.complete(ask("demo-base"))
        engine.complete(ask("demo-support"))
        assert engine.pool.loaded_ids() == ["demo-support"]
        assert engine.pool.used_bytes() <= engine.pool.budget_bytes
        text, stats = engine.complete(ask("demo-base"))  # reloads and still answers
        assert engine.pool.loaded_ids() == ["demo-base"] and stats.n_tokens > 0
    finally:
        engine.close()


def test_concurrent_requests_decode_together_and_get_the_sequential_answer(registry, demo_paths):
    engine = make_engine(registry, budget_models=2.5, max_queue=8)
    try:
        expected, _ = engine.complete(ask("demo-support"))
        spans, answers, errors = [], [], []

        def worker() -> None:
            try:
                events = iter(engine.stream(ask("demo-support")))
                text, start = "", None
                for event in events:
                    start = start or time.perf_counter()
                    text += event.text
                spans.append((start, time.perf_counter()))
                answers.append(text)
            except Exception as err:  # collected and asserted below
                errors.append(err)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors and len(answers) == 4
        model = loaded(engine, "demo-support")  # separate KV streams: batching changes no answer but near-ties
        assert not any(same_or_near_tie(model, ask("demo-support").messages, a, expected) for a in answers)
        spans.sort()
        assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # they overlapped
    finally:
        engine.close()


def test_requests_beyond_the_queue_get_busy_promptly(registry, demo_paths):
    engine = make_engine(registry, budget_models=2.5, max_queue=0, slots=1)
    try:
        holder = engine.stream(long_answer("demo-support"))
        next(holder)  # holds the model's only slot
        start = time.perf_counter()
        with pytest.raises(Busy) as err:
            list(engine.stream(ask("demo-support")))
        assert time.perf_counter() - start < 1.0
        assert "busy" in err.value.user_message and "try again" in err.value.user_message
        text, stats = engine.complete(ask("demo-base"))  # other models are not blocked
        assert stats.n_tokens > 0
        holder.close()  # releases the slot
        assert engine.complete(ask("demo-support"))[1].n_tokens > 0
    finally:
        engine.close()


def test_a_waiting_request_gives_up_with_busy_after_the_timeout(registry, demo_paths):
    engine = make_engine(registry, budget_models=2.5, max_queue=2, queue_timeout_s=0.3, slots=1)
    try:
        holder = engine.stream(long_answer("demo-support"))
        next(holder)
        with pytest.raises(Busy, match="waited"):
            list(engine.stream(ask("demo-support")))
        holder.close()
    finally:
        engine.close()
