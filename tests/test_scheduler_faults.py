"""The batching scheduler's fault paths on the real SmolLM2-135M (serving/backends/batched.py, serving/pool.py).

One visitor's Stop, a conversation coming back from RAM, a crashed model, a forgotten chat or a closing pool must
never hurt another visitor's answer. Every test here failed before its fix (issue 20); none depends on the words
the model says (answers are compared with the same prompt answered alone, greedy) or on how fast it answers (the
long answers cannot end by themselves: `ignore_eos`).
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from serving.backends.batched import SHARED_PREFIX, Job, common_prefix
from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine
from serving.errors import InvalidInput, ModelUnavailable
from serving.generation import GenerationSettings
from tests.greedy import same_or_near_tie

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24, seed=0)
ENDLESS = GenerationSettings(temperature=0.0, max_new_tokens=160, seed=0, ignore_eos=True)
PERSONA = {"role": "system", "content": (
    "You are the Order Assistant of an online shop. Answer only the customer's last message. Help with "
    "placing, tracking, changing and cancelling orders, delivery, returns and refunds. Be concise.")}
OTHER = {"role": "system", "content": (  # longer than PERSONA: its KV would cover all a borrower takes from PERSONA
    "You are a poet who lives by the sea. Answer every question with a short rhyme about waves, gulls, salt, "
    "boats and the tide. Never answer in prose, never give advice, never mention shops, orders or deliveries.")}


def ask(text: str, settings=GREEDY, system=PERSONA, conversation: str | None = None) -> ChatRequest:
    return ChatRequest(MODEL, [system, {"role": "user", "content": text}], settings, conversation)


def make(registry, **settings) -> Engine:
    return Engine(registry, ServingSettings(ram_budget_mb=4096, **settings))


def scheduler_model(engine: Engine):
    return engine.pool._loaded[MODEL].model


def scheduler_of(engine: Engine):
    engine.prepare(MODEL)
    return engine.pool._loaded[MODEL].model.scheduler


def in_thread(engine: Engine, request: ChatRequest, cancel: threading.Event | None = None):
    """Stream `request` in a thread; the returned dict gets "text", "stats" or "error" when it ends."""
    out: dict = {"text": ""}

    def run() -> None:
        try:
            for event in engine.stream(request, cancel):
                out["text"] += event.text if event.kind == "token" else ""
                out["stats"] = event.stats or out.get("stats")
        except BaseException as err:  # noqa: BLE001 - the test reads it
            out["error"] = err

    out["thread"] = threading.Thread(target=run)
    out["thread"].start()
    return out


def wait_for(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_a_stop_in_the_middle_of_a_prompt_step_never_kills_another_visitors_answer(registry):
    """Finding 1: llama.cpp splits a step into ubatches and on abort removes only the running ubatch's positions;
    the scheduler must remove the rest, or the next step re-adds a position the cache holds and the model dies."""
    long_question = "Please read my whole story before answering. " + "My parcel went to the wrong town. " * 190
    engine = make(registry, slots=2)
    try:
        scheduler = scheduler_of(engine)
        alone = engine.complete(ask("Tell me about delivery.", ENDLESS))[0]
        a = in_thread(engine, ask("Tell me about delivery.", ENDLESS, conversation="a"))
        wait_for(lambda: len(a["text"]) > 0)
        rng, aborted = random.Random(0), 0
        for trial in range(4):
            cancel = threading.Event()
            b = in_thread(engine, ask(long_question, conversation=f"b{trial}"), cancel)
            # Stop B while a step reading its prompt runs (A's next token is in the same step).
            wait_for(lambda: any(len(job.prompt) > 1000 for job in scheduler._step_jobs))
            time.sleep(rng.uniform(0.0, 0.05))
            cancel.set()
            b["thread"].join(60)
            assert "error" not in b, b.get("error")
            aborted += b["stats"].finish_reason == "cancelled"
        a["thread"].join(300)
        assert "error" not in a, f"A's answer was killed by B's Stop: {a['error']!r}"
        assert not same_or_near_tie(scheduler_model(engine), ask("Tell me about delivery.").messages, a["text"], alone,
                                    settings=ENDLESS)
        assert a["stats"].finish_reason == "length"
        assert aborted == 4 and scheduler.counts["aborted_steps"] >= 1 and scheduler.alive
    finally:
        engine.close()


def raw_job(model, messages: list[dict], conversation: str | None) -> Job:
    """Submit straight to the model's scheduler (so a test can hold the scheduler's lock around submits)."""
    return model.submit(model.prompt_tokens(messages), 24, GREEDY, None, conversation, threading.Event())


def text_of(job: Job) -> str:
    return "".join(item.text for item in job.results() if hasattr(item, "text"))


def test_a_conversation_restored_from_ram_never_lands_in_a_slot_with_a_pending_copy(registry):
    """Finding 3: a copy between KV streams is queued until the next decode, a restore writes at once. A job that
    borrows slot S's prefix and a returning conversation placed into S in the same admission pass must each get
    their own KV."""
    engine = make(registry, slots=2)
    try:
        scheduler = scheduler_of(engine)
        model = engine.pool._loaded[MODEL].model
        x1 = [OTHER, {"role": "user", "content": "Write a rhyme about waves."}]
        x2 = [*x1, {"role": "assistant", "content": text_of(raw_job(model, x1, None))},
              {"role": "user", "content": "And one about gulls."}]
        y = [PERSONA, {"role": "user", "content": "Can I change the delivery address?"}]
        expected = [text_of(raw_job(model, y, None)), text_of(raw_job(model, x2, None))]
        scheduler.clear_cache()
        text_of(raw_job(model, x1, "x"))  # x in slot 0
        text_of(raw_job(model, [PERSONA, {"role": "user", "content": "Where is my order?"}], "p"))  # p in slot 1
        text_of(raw_job(model, [PERSONA, {"role": "user", "content": "How do I return a lamp?"}], "z"))
        assert scheduler.cached_tokens("x") and scheduler.saved_bytes() > 0  # x went to RAM, z took slot 0
        with scheduler._cond:  # one admission pass: y borrows z's persona prefix (slot 0), x comes back from RAM
            jobs = [raw_job(model, y, "y"), raw_job(model, x2, "x")]
        problems = [same_or_near_tie(model, m, text_of(job), e) for m, job, e in zip((y, x2), jobs, expected)]
        assert not any(problems), problems
        # Whether a restore there shows in y's answer depends on where llama.cpp puts the restored cells in the
        # stream (before the fix this test once saw y answer with x's rhyme about waves, once not): so the rule
        # itself is checked too. x was not restored under the queued copy; it was read again.
        assert scheduler.counts["copies"] >= 2 and scheduler.counts["restores_skipped"] == 1
    finally:
        engine.close()


def test_a_crashed_model_is_closed_only_when_its_last_user_leaves(registry):
    """Finding 4: a request still holding the dead model (tokenizing, building a grammar) keeps it usable."""
    engine = make(registry, slots=2)
    try:
        engine.prepare(MODEL)
        with engine.pool.use(MODEL, lambda: 1, lambda: None) as held:
            bad = Job([held.n_vocab + 7], 4, held.sampler(GREEDY), held.stop_ids, threading.Event())
            held.scheduler.submit(bad)  # a token id llama.cpp refuses: the decode thread dies
            with pytest.raises(ModelUnavailable):
                list(bad.results())
            text, stats = engine.complete(ask("Where is my order?"))  # another visitor: the model reloads
            assert stats.n_tokens > 0 and engine.pool._loaded[MODEL].model is not held
            assert held.model.model is not None  # not freed under its user...
            assert held.tokenize("still usable", special=False)
        assert held.model.model is None  # ...but closed once that user left
    finally:
        engine.close()


def test_forget_frees_the_slot_and_the_ram_save(registry):
    """Finding 5: a one-off API call or a deleted chat leaves no KV (visitor text) behind."""
    engine = make(registry, slots=1)
    try:
        scheduler = scheduler_of(engine)
        engine.complete(ask("Where is my order BL-12345?", conversation="api-1"))
        engine.complete(ask("My parcel is late.", conversation="chat-2"))  # api-1 goes to RAM
        assert scheduler.cached_tokens("api-1") and scheduler.saved_bytes() > 0
        engine.forget("api-1")
        engine.forget("chat-2")
        wait_for(lambda: scheduler.cached_tokens("api-1") is None and scheduler.cached_tokens("chat-2") is None, 10)
        assert scheduler.saved_bytes() == 0
        assert all(not slot.tokens and slot.owner is None for slot in scheduler._slots)
    finally:
        engine.close()


def test_a_forgotten_conversation_leaves_only_the_shared_prefix_which_the_next_one_reuses(registry):
    """Every `/chat` call is forgotten when it ends: its slot keeps the persona's shared prefix (pre-read as
    `prefix:<persona>`) and nothing of the visitor's text, so the next call reads neither again nor copies it."""
    engine = make(registry, slots=2)
    try:
        scheduler, model = scheduler_of(engine), scheduler_model(engine)
        shared = model.prompt_tokens([PERSONA])
        for _ in model.submit(shared, 1, GREEDY, None, SHARED_PREFIX + "order", threading.Event()).results():
            pass
        first = engine.complete(ask("Where is my order BL-12345?", conversation="api-1"))[1]
        engine.forget("api-1")
        wait_for(lambda: scheduler.cached_tokens("api-1") is None, 10)
        left = next(slot for slot in scheduler._slots if slot.owner is None)
        kept = common_prefix(shared, model.prompt_tokens([PERSONA, {"role": "user", "content": "x"}]))
        assert kept >= 32 and left.tokens == shared[:kept]  # the system turn's tokens, not one of the visitor's
        copies = scheduler.counts["copies"]
        second = engine.complete(ask("My parcel is late.", conversation="api-2"))[1]
        assert second.cached_prompt_tokens >= kept and first.cached_prompt_tokens >= kept
        assert scheduler.counts["copies"] == copies  # taken over where it lay, not copied from the donor
    finally:
        engine.close()


def test_a_shared_prefix_whose_slot_was_taken_serves_the_next_visitor_from_ram(registry):
    """A pre-read persona prefix whose slot another conversation took goes to RAM; the next visitor of that persona
    starts from that save instead of reading the prefix again, and answers as if alone."""
    engine = make(registry, slots=2)
    try:
        scheduler, model = scheduler_of(engine), scheduler_model(engine)
        question = ask("Can I change the delivery address?")
        expected = engine.complete(question)[0]
        scheduler.clear_cache()
        shared = model.prompt_tokens([PERSONA])
        for _ in model.submit(shared, 1, GREEDY, None, SHARED_PREFIX + "order", threading.Event()).results():
            pass
        for name in ("a", "b"):  # two other conversations: the second takes the prefix's slot (least recently used)
            engine.complete(ask("Write a rhyme about waves.", system=OTHER, conversation=name))
        assert not any(slot.tokens[:len(shared)] == shared for slot in scheduler._slots)
        answer, stats = engine.complete(ChatRequest(MODEL, question.messages, GREEDY, "c"))
        kept = common_prefix(shared, model.prompt_tokens(question.messages))
        assert scheduler.counts["prefix_restores"] == 1 and stats.cached_prompt_tokens >= kept >= 32
        assert not same_or_near_tie(model, question.messages, answer, expected)
    finally:
        engine.close()


def test_the_kv_ram_store_stays_within_its_budget_and_the_pool_counts_it(registry):
    """Finding 2: saved states are bounded by IRIS_KV_RAM_MB, and the pool budgets that RAM with the model."""
    from serving.backends.llamacpp import LlamaCppLoader

    small, large = ServingSettings(kv_ram_mb=0), ServingSettings(kv_ram_mb=64)
    entry = registry.get(MODEL)
    engine = make(registry, slots=1, kv_ram_mb=1)
    try:
        scheduler = scheduler_of(engine)
        for i in range(4):
            engine.complete(ask(f"Question number {i} about my order.", conversation=f"c{i}"))
            assert scheduler.saved_bytes() <= 2**20
        model = engine.pool._loaded[MODEL].model
        loader = LlamaCppLoader()
        assert loader.size(entry, model.path, large) - loader.size(entry, model.path, small) == 64 * 2**20
    finally:
        engine.close()


def test_closing_the_pool_ends_running_answers_instead_of_leaving_them_waiting(registry):
    """Finding 6: `pool.close()` under a running answer: its result loop ends with a visitor message."""
    engine = make(registry, slots=2)
    run = in_thread(engine, ask("Tell me about delivery.", ENDLESS, conversation="a"))
    wait_for(lambda: len(run["text"]) > 0)
    engine.close()
    run["thread"].join(60)
    assert not run["thread"].is_alive() and isinstance(run.get("error"), ModelUnavailable)


def test_settings_refuse_a_batch_smaller_than_the_slots():
    with pytest.raises(ValueError, match=r"n_batch \(8\) must be at least slots \(64\)"):
        ServingSettings(slots=64, n_batch=8)


def test_a_template_that_refuses_a_conversation_is_a_visitor_message(tmp_path):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from serving.backends.llamacpp import render_chat
    from tests.fakes import FakeLoader, fake_registry

    strict = Jinja2ChatFormatter("{% for m in messages %}{% if loop.index0 > 0 and m['role'] == messages["
                                 "loop.index0 - 1]['role'] %}{{ raise_exception('Conversation roles must alternate') }}"
                                 "{% endif %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>",
                                 eos_token="", bos_token="")

    class StrictLoader(FakeLoader):
        def load(self, entry, path, settings):
            model = super().load(entry, path, settings)
            model.render = lambda messages: render_chat(strict, messages)
            return model

    engine = Engine(fake_registry(tmp_path), ServingSettings(ram_budget_mb=1), StrictLoader(["ok"]))
    twice = ChatRequest("fake-a", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], GREEDY)
    with pytest.raises(InvalidInput, match="Conversation roles must alternate"):
        engine.complete(twice)
