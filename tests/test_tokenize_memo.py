"""A persona's shared text is tokenized once, not on every request (issue 21: the engine's per-request work).

Every request of a grounded persona sends the same persona prompt and help-center text; the engine counted and
tokenized it three times per request (~7 ms of a SmolLM2 TTFT of ~0.1 s, benchmarks/RESULTS-grounding.md).
`LlamaCppModel.tokenize` remembers the ids of long texts. On the real SmolLM2-135M-Instruct; nothing here reads
the model's words or its speed (no answer is generated).
"""

from __future__ import annotations

import pytest

from serving.backends import llamacpp
from serving.config import ServingSettings
from serving.context.layer import ContextLayer, ContextSettings
from serving.engine import ChatRequest, Engine
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
