"""What every new conversation of a grounded persona shares is prepared once (issue 21: a new conversation's TTFT).

Every request of a grounded persona sends the same persona prompt and help-center text; the engine counted and
tokenized it three times per request (~7 ms of a SmolLM2 TTFT of ~0.1 s, benchmarks/RESULTS-grounding.md):
`LlamaCppModel.tokenize` remembers the ids of long texts. The pre-read prefix ends with the template's opening of the
user turn, so a new conversation reads only its question and the template's ending. On the real
SmolLM2-135M-Instruct (and the Llama-3-template demo model); nothing here reads the model's words or its speed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serving.backends import llamacpp
from serving.config import ServingSettings
from serving.context.layer import ContextLayer, ContextSettings
from serving.engine import PREFIX_OWNER, ChatRequest, Engine
from serving.generation import GenerationSettings
from serving.personas import PERSONAS_DIR, load_personas

MODEL = "smollm2-135m-instruct"
LONG = 1000  # characters: longer than the memo's threshold; a persona's system turn is several thousand


@pytest.fixture(scope="module")
def engine(registry):
    personas = load_personas(PERSONAS_DIR)
    context = ContextLayer.from_personas(personas.personas.values(), PERSONAS_DIR,
                                         ContextSettings(orders_db=None, orders_csv=None))
    # slots=1: no slot is left for a pre-read, so loading the model decodes nothing (this test needs no answer)
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048, slots=1), personas=personas, context=context)
    engine.prepare(MODEL)
    yield engine
    engine.close()


@pytest.fixture
def model(engine):
    return engine.pool._loaded[MODEL].model


@pytest.fixture
def long_texts(model, monkeypatch) -> list[str]:
    """The texts of `LONG` characters or more that reach llama.cpp's tokenizer from now on."""
    seen: list[str] = []
    given = model.model.tokenize

    def counting(text: bytes, add_bos: bool, special: bool):
        if len(text.decode("utf-8")) >= LONG:
            seen.append(text.decode("utf-8"))
        return given(text, add_bos, special)

    monkeypatch.setattr(model.model, "tokenize", counting)
    return seen


def question(conversation_id: str) -> ChatRequest:
    return ChatRequest(MODEL, [{"role": "user", "content": "How long does standard shipping take?"}],
                       GenerationSettings(max_new_tokens=8), conversation_id, persona_id="order_assistant")


def test_a_persona_s_shared_text_reaches_the_tokenizer_once_across_requests(engine, long_texts):
    first = engine.context_usage(question("first"))
    assert long_texts  # the persona prompt and help-center passages (or the memo was already warm: still fine)
    long_texts.clear()
    second = engine.context_usage(question("second"))
    assert second == first
    assert long_texts == []  # before: the system turn's text, tokenized again on every request


def test_remembered_ids_are_the_tokenizer_s_and_every_call_gets_its_own_list(model, long_texts):
    text = "Orders ship within two business days. " * 30
    fresh = model.model.tokenize(text.encode("utf-8"), False, False)
    long_texts.clear()
    ids = model.tokenize(text, False)
    assert ids == fresh and len(long_texts) == 1
    ids.append(-1)  # a caller extending its list changes nothing remembered
    assert model.tokenize(text, False) == fresh and len(long_texts) == 1
    special = "<|im_start|>" + text
    assert model.tokenize(special, True) != model.tokenize(special, False)  # remembered per `special`
    short = "Hi there"
    model.tokenize(short, False)
    assert len(model._memo) <= llamacpp._MEMO_ENTRIES and (short, False) not in model._memo


def test_the_memo_forgets_the_least_recently_used_text(model, long_texts):
    texts = [f"Passage {i}: returns are accepted within thirty days of delivery. " * 16
             for i in range(llamacpp._MEMO_ENTRIES + 1)]
    for text in texts:
        model.tokenize(text, False)
    assert len(model._memo) == llamacpp._MEMO_ENTRIES
    long_texts.clear()
    model.tokenize(texts[-1], False)
    assert long_texts == []
    model.tokenize(texts[0], False)  # pushed out by the last one
    assert long_texts == [texts[0]]


def small_help_center(folder: Path) -> Path:
    """A persona whose whole knowledge fits every model's budget (so all of its system turn is shared)."""
    (folder / "knowledge" / "kb").mkdir(parents=True)
    (folder / "knowledge" / "kb" / "returns.md").write_text("# Returns\n\n## Return window\nItems can be returned "
                                                           "within 30 days of delivery, unused and in their box.\n")
    (folder / "kb.yaml").write_text("id: kb\nname: KB\ngroup: support\nsystem_prompt: Answer from the help center."
                                    "\nknowledge: knowledge/kb\n")
    return folder


@pytest.mark.parametrize("model_id", [MODEL, "demo-support"])  # ChatML, and a Llama 3 template
def test_a_new_conversation_borrows_the_opening_of_its_user_turn_too(registry, demo_paths, tmp_path, model_id):
    folder = small_help_center(tmp_path)
    personas = load_personas(folder)
    context = ContextLayer.from_personas(personas.personas.values(), folder,
                                         ContextSettings(orders_db=None, orders_csv=None))
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048, slots=2), personas=personas, context=context)
    try:
        engine.prepare(model_id)
        model = engine.pool._loaded[model_id].model
        deadline = time.monotonic() + 120
        while model.scheduler.busy_slots() or not model.scheduler.cached_tokens(PREFIX_OWNER + "kb"):
            assert time.monotonic() < deadline, "the pre-read did not finish"
            time.sleep(0.05)
        asked = [ChatRequest(model_id, [{"role": "user", "content": q}], GenerationSettings(max_new_tokens=1), q,
                             persona_id="kb") for q in ("What is the return window?", "Can I return a used item?")]
        prompts = [model.prompt_tokens(engine._grounded(r, engine._counter(model), model.n_ctx)[0].messages)
                   for r in asked]
        shared = next(i for i, (a, b) in enumerate(zip(*prompts)) if a != b)  # up to the question's own words
        _, stats = engine.complete(asked[0])
        assert stats.n_prompt_tokens == len(prompts[0])
        assert stats.cached_prompt_tokens >= shared  # before: the system turn only (the user turn's markers read)
    finally:
        engine.close()
