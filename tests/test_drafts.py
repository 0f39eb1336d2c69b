"""Drafts: several answers written at once for a grounded question and the one its sources back best shown
(`serving.context.drafts`, the engine's `_drafted`).

The choice is tested on the shop's real help center through the real context layer; the engine's wiring with a
fake backend whose drafts say fixed texts (the words matter there: which one is shown, with which settings each
was asked for, Stop, free slots); and on the real SmolLM2, where the words are the model's: the shown answer's
check is the check of what was shown, every slot comes back, and one visitor's Stop while drafting leaves another
visitor's answer whole.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from serving.config import ServingSettings
from serving.context.check import check_answer, relevance
from serving.context.drafts import DRAFT_TEMPERATURE, choose
from serving.context.layer import ContextLayer, ContextSettings
from serving.context.orders import build_orders_db, read_orders_csv
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from serving.personas import PERSONAS_DIR, PersonaBook, load_personas
from tests.fakes import FakeLoader, fake_registry
from training.demo.orders import ORDERS_CSV

PERSONAS = load_personas()
HOW_LONG = "How long does express delivery take?"
STANDARD = "Standard shipping takes 3 to 5 business days."
EXPRESS = "Express shipping takes 1 to 2 business days."
MADE_UP = "Express shipping takes 4 to 6 business days."


def drafting(n: int, persona: str = "order_assistant") -> PersonaBook:
    """The real personas with `persona` asking for `n` drafts."""
    return PersonaBook(personas={**PERSONAS.personas,
                                 persona: PERSONAS.get(persona).model_copy(update={"drafts": n})})


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> ContextLayer:
    db = build_orders_db(ORDERS_CSV, tmp_path_factory.mktemp("orders") / "orders.sqlite")
    return ContextLayer.from_personas(PERSONAS.personas.values(), PERSONAS_DIR,
                                      ContextSettings(orders_db=db, orders_csv=None))


@pytest.fixture(scope="module")
def given(layer) -> str:
    text = layer.for_request(PERSONAS.get("order_assistant"), HOW_LONG, lambda t: len(t) // 4, 1536).text
    assert STANDARD in text and "Express shipping takes 1 to 2 business days" in text
    return text


def test_the_draft_whose_figures_rest_on_the_line_the_question_asks_about_is_chosen(given):
    assert relevance(EXPRESS, given, HOW_LONG) > relevance(STANDARD, given, HOW_LONG) > 0.0
    assert relevance("Please contact support.", given, HOW_LONG) == 0.0  # no figure, nothing to rest on
    drafts = [(t, check_answer(t, given, HOW_LONG)) for t in (STANDARD, EXPRESS, "Please contact support.")]
    assert choose(drafts, given, HOW_LONG) == 1
    assert choose(drafts[::-1], given, HOW_LONG) == 1  # not its place: its grounds


def test_an_unbacked_figure_loses_to_a_backed_one_and_a_tie_goes_to_the_first_draft(given):
    made_up, standard = (check_answer(t, given, HOW_LONG) for t in (MADE_UP, STANDARD))
    assert made_up.unbacked == ("4 to 6 business days",) and standard.unbacked == ()
    assert choose([(MADE_UP, made_up), (STANDARD, standard)], given, HOW_LONG) == 1
    assert choose([(STANDARD, standard), (STANDARD, standard)], given, HOW_LONG) == 0
    assert choose([(MADE_UP, made_up)], given, HOW_LONG) == 0  # one draft: shown, with its warning
    with pytest.raises(ValueError):
        choose([], given, HOW_LONG)


def test_a_persona_asks_for_at_most_eight_drafts():
    with pytest.raises(ValueError, match="drafts"):
        PERSONAS.get("order_assistant").model_validate({**PERSONAS.get("order_assistant").model_dump(), "drafts": 9})


# ---------------------------------------------------------------- the engine, with a fake backend

def fake_engine(tmp_path, layer, n: int, free: int = 4, scripts=None, **settings) -> Engine:
    scripts = scripts or [[STANDARD], [MADE_UP], [EXPRESS], ["Please ", "contact support."]]
    return Engine(fake_registry(tmp_path), ServingSettings(ram_budget_mb=1, **settings),
                  FakeLoader(["unused"], drafts=scripts, free=free), personas=drafting(n), context=layer)


def ask(persona: str | None = "order_assistant", seed: int | None = 7, cid: str = "c1") -> ChatRequest:
    return ChatRequest("fake-a", [{"role": "user", "content": HOW_LONG}],
                       GenerationSettings(temperature=0.2, max_new_tokens=16, seed=seed), cid, persona_id=persona)


def test_the_engine_writes_the_drafts_together_and_shows_the_best_one_whole(tmp_path, layer):
    engine = fake_engine(tmp_path, layer, 4)
    events = list(engine.stream(ask()))
    assert [e.kind for e in events] == ["queued", "token", "done"]
    assert events[0].text.startswith("Writing 4 drafts")
    assert events[1].text == EXPRESS
    stats = events[-1].stats
    assert stats.drafts == 4 and stats.check.unbacked == () and stats.finish_reason == "stop"
    assert {s.ref for s in stats.sources} >= {"shop/shipping.md#delivery-times"}
    model = engine.pool._loaded["fake-a"].model
    settings = [s for _, s in model.jobs]
    assert settings[0] == ask().settings  # the first draft: the request's own settings and seed
    assert [(s.temperature, s.seed) for s in settings[1:]] == [(DRAFT_TEMPERATURE, 8), (DRAFT_TEMPERATURE, 9),
                                                                (DRAFT_TEMPERATURE, 10)]
    assert [job.conversation_id for job, _ in model.jobs] == ["c1", None, None, None]  # one keeps the KV cache
    assert all(job.cancel.is_set() for job, _ in model.jobs)  # every draft's slot given back
    engine.close()


def test_drafts_only_in_free_slots_within_max_drafts_and_only_for_grounded_answers(tmp_path, layer):
    engine = fake_engine(tmp_path, layer, 4, free=2)
    assert list(engine.stream(ask()))[-1].stats.drafts == 2  # two slots free: two drafts
    engine.close()
    for engine in (fake_engine(tmp_path, layer, 4, max_drafts=1), fake_engine(tmp_path, layer, 4, free=0),
                   fake_engine(tmp_path, layer, 1)):
        events = list(engine.stream(ask()))
        assert "queued" not in [e.kind for e in events] and events[-1].stats.drafts == 1
        assert "".join(e.text for e in events if e.kind == "token") == STANDARD  # streamed as written
        engine.close()
    engine = fake_engine(tmp_path, layer, 4)
    plain = list(engine.stream(ask(persona=None)))  # no persona, no sources: nothing to choose by
    assert plain[-1].stats.drafts == 1 and plain[-1].stats.sources == ()
    engine.close()


def test_a_draft_running_on_past_the_limit_is_cut_and_left_out(tmp_path, layer):
    rambling = [EXPRESS, *[" And more."] * 60]  # would win on its figures, but runs on past 2 x 1 + 32 pieces
    engine = fake_engine(tmp_path, layer, 2, scripts=[[STANDARD], rambling])
    request = ask()
    events = list(engine.stream(replace(request, settings=request.settings.merged(max_new_tokens=100))))
    assert events[1].text == STANDARD and events[-1].stats.drafts == 2
    model = engine.pool._loaded["fake-a"].model
    assert all(job.cancel.is_set() for job, _ in model.jobs)
    engine.close()


def test_stop_while_drafting_ends_every_draft_and_shows_nothing(tmp_path, layer):
    slow = [["word "] * 400] * 4
    engine = fake_engine(tmp_path, layer, 4, scripts=slow)
    cancel = threading.Event()
    events = []
    for event in engine.stream(ask(), cancel):
        events.append(event)
        if event.kind == "queued":
            threading.Timer(0.1, cancel.set).start()
    assert [e.kind for e in events] == ["queued", "done"]
    assert events[-1].stats.finish_reason == "cancelled" and events[-1].stats.n_tokens == 0
    assert events[-1].stats.check is None
    model = engine.pool._loaded["fake-a"].model
    assert len(model.jobs) == 4 and all(job.cancel.is_set() for job, _ in model.jobs)
    engine.close()


# ---------------------------------------------------------------- the real model

def loaded(engine: Engine, model_id: str = "smollm2-135m-instruct"):
    """`model_id` loaded, its personas' prefixes pre-read: every slot free (drafts go only into free slots)."""
    engine.prepare(model_id)
    model = engine.pool._loaded[model_id].model
    deadline = time.monotonic() + 120
    while model.free_slots() < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    return model


@pytest.mark.slow
def test_on_the_real_model_drafting_frees_every_slot_and_the_answer_is_checked_as_shown(registry, layer):
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048), personas=drafting(4), context=layer)
    request = replace(ask(), model_id="smollm2-135m-instruct",
                      settings=GenerationSettings(temperature=0.0, max_new_tokens=40))
    try:
        model = loaded(engine)
        events = list(engine.stream(request))
        shown = "".join(e.text for e in events if e.kind == "token")
        stats = events[-1].stats
        assert events[0].kind == "queued" and stats.drafts == 4 and stats.finish_reason in ("stop", "length")
        assert [e.kind for e in events].count("token") <= 1  # shown whole, once chosen
        assert stats.check == check_answer(shown, layer.for_request(
            PERSONAS.get("order_assistant"), HOW_LONG, lambda t: len(model.tokenize(t, False)),
            ContextSettings().budget_tokens(model.n_ctx)).text, HOW_LONG)
        deadline = time.monotonic() + 30
        while model.scheduler.busy_slots() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model.scheduler.busy_slots() == 0 and model.free_slots() == 4
    finally:
        engine.close()


@pytest.mark.slow
def test_on_the_real_model_one_visitors_stop_while_drafting_leaves_anothers_answer_whole(registry, layer):
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048), personas=drafting(4), context=layer)
    long = GenerationSettings(temperature=0.0, max_new_tokens=256, ignore_eos=True)
    other = ChatRequest("smollm2-135m-instruct", [{"role": "user", "content": "Tell me about the sea."}], long, "b")
    drafted = replace(ask(), model_id="smollm2-135m-instruct",
                      settings=GenerationSettings(temperature=0.0, max_new_tokens=400, ignore_eos=True))
    try:
        started, theirs = threading.Event(), []

        def visitor_b() -> None:
            for event in engine.stream(other):
                started.set()
                theirs.append(event)

        model = loaded(engine)
        b = threading.Thread(target=visitor_b)
        b.start()
        assert started.wait(120)
        cancel, mine = threading.Event(), []
        for event in engine.stream(drafted, cancel):
            mine.append(event)
            if event.kind == "queued":  # the drafts go into the three free slots; Stop once all four decode
                def stop() -> None:
                    deadline = time.monotonic() + 60
                    while model.scheduler.busy_slots() < 4 and time.monotonic() < deadline:
                        time.sleep(0.005)
                    cancel.set()
                threading.Thread(target=stop).start()
        b.join(120)
        assert [e.kind for e in mine] == ["queued", "done"]
        assert mine[-1].stats.finish_reason == "cancelled" and mine[-1].stats.drafts == 3
        assert theirs[-1].kind == "done" and theirs[-1].stats.finish_reason == "length"
        assert theirs[-1].stats.n_tokens == 256
        deadline = time.monotonic() + 30
        while model.scheduler.busy_slots() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model.scheduler.busy_slots() == 0
    finally:
        engine.close()
