"""Many visitors on one model (serving/backends/batched.py) with the real demo model and SmolLM2-135M.

Answers decoded together equal the same requests run alone (each slot has its own KV stream), but for
near-ties that the step's shape may tip (tests/greedy.py); grammars, stop texts and cancels stay with their own request; a
conversation pushed out of its slot comes back from RAM and continues exactly as without eviction;
a cancel during a long prompt frees the slot within half a second; a waiting visitor hears their
place in the queue."""

import json
import threading
import time

import pytest

from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from tests.greedy import same_or_near_tie

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=32, seed=0)
SYSTEM = {"role": "system", "content": "You are the Order Assistant. Be concise."}
QUESTIONS = ["Where is my order?", "How do I return a broken kettle?", "Can I change my delivery address?",
             "What does shipping cost to Norway?", "My parcel arrived damaged, what now?", "Cancel order 5521."]


def ask(text: str, model_id: str = "demo-support", **kw) -> ChatRequest:
    return ChatRequest(model_id, [SYSTEM, {"role": "user", "content": text}], kw.pop("settings", GREEDY), **kw)


def make(registry, **settings) -> Engine:
    return Engine(registry, ServingSettings(ram_budget_mb=4096, **settings))


def together(engine: Engine, requests: list[ChatRequest], cancel_first: bool = False) -> list[tuple[str, object]]:
    """Stream all requests at once from threads; (text, stats) in request order."""
    results: list = [None] * len(requests)
    started = threading.Barrier(len(requests))

    def run(i: int) -> None:
        cancel = threading.Event()
        started.wait()
        text, stats = "", None
        for event in engine.stream(requests[i], cancel):
            if event.kind == "token":
                text += event.text
                if cancel_first and i == 0:
                    cancel.set()
            stats = event.stats or stats
        results[i] = (text, stats)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


@pytest.mark.parametrize("choice", ["off", "on", "auto"])
def test_flash_attention_setting_reaches_the_llama_cpp_context(registry, demo_paths, choice):
    import llama_cpp as ll

    engine = make(registry, flash_attn=choice)
    try:
        text, stats = engine.complete(ask(QUESTIONS[0]))
        assert text and stats.finish_reason in ("stop", "length")
        expected = {"off": ll.LLAMA_FLASH_ATTN_TYPE_DISABLED, "on": ll.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                    "auto": ll.LLAMA_FLASH_ATTN_TYPE_AUTO}[choice]
        assert engine.pool._loaded["demo-support"].model.ctx.params.flash_attn_type == expected
    finally:
        engine.close()


@pytest.mark.parametrize("model_id", ["demo-support", "smollm2-135m-instruct"])
def test_simultaneous_greedy_answers_equal_the_answers_alone(registry, demo_paths, model_id):
    engine = make(registry, slots=4)
    try:
        requests = [ask(q, model_id) for q in QUESTIONS]  # 6 requests, 4 slots: two wait and join later
        alone = [engine.complete(r)[0] for r in requests]
        both = together(engine, requests)
        model = engine.pool._loaded[model_id].model
        problems = [same_or_near_tie(model, r.messages, text, a) for r, (text, _), a in zip(requests, both, alone)]
        assert not any(problems), problems
        assert all(stats.finish_reason in ("stop", "length") for _, stats in both)
    finally:
        engine.close()


def test_grammar_stop_texts_and_cancel_stay_with_their_own_request(registry, demo_paths):
    engine = make(registry, slots=4)
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}}, "required": ["answer"]}
    plain = ask(QUESTIONS[1])
    try:
        expected = engine.complete(plain)[0]
        word = next(w for w in expected.split()[2:] if len(w) > 3)
        requests = [ask(QUESTIONS[0], settings=GenerationSettings(temperature=1.0, max_new_tokens=300, seed=4)),
                    ask("Reply in JSON", response_format={"type": "json_object", "schema": schema}),
                    ask(QUESTIONS[1], stop=(word,)), plain]
        (cancelled, c_stats), (js, _), (stopped, s_stats), (free, _) = together(engine, requests, cancel_first=True)
        assert c_stats.finish_reason == "cancelled" and c_stats.n_tokens < 300
        assert isinstance(json.loads(js)["answer"], str)
        assert word not in stopped and expected.startswith(stopped) and s_stats.finish_reason == "stop"
        # neither the grammar, the stop text nor the cancel touched it
        assert not same_or_near_tie(engine.pool._loaded["demo-support"].model, plain.messages, free, expected)
    finally:
        engine.close()


def turns(engine: Engine, conversation: str, questions: list[str]) -> list:
    messages, stats = [SYSTEM], []
    for question in questions:
        messages.append({"role": "user", "content": question})
        text, st = engine.complete(ChatRequest("demo-support", list(messages), GREEDY, conversation))
        messages.append({"role": "assistant", "content": text})
        stats.append((text, st))
    return stats


def test_a_conversation_evicted_to_ram_continues_exactly_as_without_eviction(registry, demo_paths):
    reference = make(registry, slots=1)
    try:
        expected = turns(reference, "a", QUESTIONS[:2])
    finally:
        reference.close()
    engine = make(registry, slots=1)  # one slot: b pushes a out, a comes back from RAM
    try:
        first = turns(engine, "a", QUESTIONS[:1])
        turns(engine, "b", QUESTIONS[2:4])
        assert engine.pool._loaded["demo-support"].model.scheduler.cached_tokens("a")  # saved, not lost
        messages = [SYSTEM, {"role": "user", "content": QUESTIONS[0]}, {"role": "assistant", "content": first[0][0]},
                    {"role": "user", "content": QUESTIONS[1]}]
        text, stats = engine.complete(ChatRequest("demo-support", messages, GREEDY, "a"))
        assert not same_or_near_tie(engine.pool._loaded["demo-support"].model, messages, text, expected[1][0])
        assert stats.cached_prompt_tokens >= first[0][1].n_prompt_tokens  # turn 1 was restored, not re-read
    finally:
        engine.close()


def test_cancel_during_a_long_prompt_frees_the_slot_within_half_a_second(registry, demo_paths):
    engine = make(registry, slots=1, max_queue=0)
    long = ChatRequest("smollm2-135m-instruct", [{"role": "user", "content": "Summarise: " + "the parcel " * 350}],
                       GREEDY)
    try:
        engine.prepare("smollm2-135m-instruct")
        scheduler = engine.pool._loaded["smollm2-135m-instruct"].model.scheduler
        cancel, events = threading.Event(), []
        thread = threading.Thread(target=lambda: events.extend(engine.stream(long, cancel)))
        thread.start()
        deadline = time.monotonic() + 10
        while scheduler.busy_slots() == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # well inside the ~700-token prompt
        cancel.set()
        t0 = time.monotonic()
        thread.join(timeout=5)
        freed = time.monotonic() - t0
        assert events[-1].stats.finish_reason == "cancelled" and events[-1].stats.n_tokens == 0
        assert freed < 0.5 and scheduler.busy_slots() == 0
        assert engine.complete(ask("Thanks", "smollm2-135m-instruct"))[1].n_tokens > 0  # the slot serves again
    finally:
        engine.close()


def test_a_waiting_visitor_hears_their_place_in_the_queue(registry, demo_paths):
    engine = make(registry, slots=1, max_queue=2)
    # an answer that cannot end by itself before it is closed (800 tokens): the second request must wait
    hold = ask("Write", settings=GenerationSettings(temperature=1.0, max_new_tokens=800, seed=0, ignore_eos=True))
    try:
        holder = engine.stream(hold)
        next(holder)
        events = list(engine.stream(ask(QUESTIONS[0])))
        queued = [e for e in events if e.kind == "queued"]
        assert queued and "position 1" in queued[0].text and events.index(queued[0]) == 0
        assert events[-1].kind == "done" and events[-1].stats.n_tokens > 0
        holder.close()
    finally:
        engine.close()


def test_a_failed_decode_is_a_visible_restart_and_the_next_request_reloads_the_model(registry, demo_paths):
    from serving.backends.batched import Job
    from serving.errors import ModelUnavailable

    engine = make(registry, slots=2)
    try:
        engine.prepare("demo-support")
        broken = engine.pool._loaded["demo-support"].model
        bad = Job([broken.n_vocab + 7], 4, broken.sampler(GREEDY), broken.stop_ids, threading.Event())
        broken.scheduler.submit(bad)  # a token id llama.cpp refuses: llama_decode fails, the decode thread stops
        with pytest.raises(ModelUnavailable) as err:
            list(bad.results())
        assert "stopped unexpectedly" in err.value.user_message and not broken.alive
        text, stats = engine.complete(ask(QUESTIONS[0]))  # "model restarting": loaded again, answers
        assert stats.n_tokens > 0 and engine.pool._loaded["demo-support"].model is not broken
    finally:
        engine.close()
