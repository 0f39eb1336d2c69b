"""The check every batching test leans on (tests/greedy.py), on the real SmolLM2-135M: a served greedy answer passes
on its own prompt, an answer computed on another conversation fails, and the replay ranks tokens as the served
sampler does (repetition penalty, banned end tokens, the model's own token split)."""

from __future__ import annotations

import pytest

from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from tests.greedy import TIE_GAP, TokenTexts, greedy_deficit, same_or_near_tie

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
SHOP = {"role": "system", "content": "You are the Order Assistant of an online shop. Answer only the customer's last "
                                     "message. Be concise."}
POET = {"role": "system", "content": "You are a poet who lives by the sea. Answer every question with a short rhyme "
                                     "about waves, gulls, salt, boats and the tide. Never answer in prose."}


@pytest.fixture(scope="module")
def served(registry):
    engine = Engine(registry, ServingSettings(slots=1, ram_budget_mb=4096))
    engine.prepare(MODEL)
    yield engine, engine.pool._loaded[MODEL].model
    engine.close()


def answer(engine: Engine, messages: list[dict], settings: GenerationSettings) -> str:
    return engine.complete(ChatRequest(MODEL, messages, settings))[0]


@pytest.mark.parametrize("penalty", [1.0, 1.1, 1.3])
def test_a_served_greedy_answer_is_greedy_on_its_own_prompt(served, penalty):
    engine, model = served
    settings = GenerationSettings(temperature=0.0, max_new_tokens=48, repeat_penalty=penalty)
    messages = [SHOP, {"role": "user", "content": "My parcel arrived damaged. What can I do?"}]
    text = answer(engine, messages, settings)
    worst = greedy_deficit(model.path, model.prompt_tokens(messages), text, repeat_penalty=penalty)
    assert worst.logits <= TIE_GAP, worst
    assert same_or_near_tie(model, messages, text + "", "another answer", settings=settings) is None


def test_an_answer_computed_on_another_conversation_is_caught(served):
    engine, model = served
    settings = GenerationSettings(temperature=0.0, max_new_tokens=48)
    shop = [SHOP, {"role": "user", "content": "How do I return a broken kettle?"}]
    poem = answer(engine, [POET, {"role": "user", "content": "Write about the sea at night."}], settings)
    problem = same_or_near_tie(model, shop, poem, answer(engine, shop, settings), settings=settings)
    assert problem is not None and "logits below" in problem


def test_the_replay_applies_the_repetition_penalty_it_was_sampled_with(served):
    engine, model = served
    strong = GenerationSettings(temperature=0.0, max_new_tokens=96, repeat_penalty=2.0)
    messages = [SHOP, {"role": "user", "content": "List every step of returning an item, one per line."}]
    text = answer(engine, messages, strong)
    prompt = model.prompt_tokens(messages)
    with_penalty = greedy_deficit(model.path, prompt, text, repeat_penalty=2.0)
    without = greedy_deficit(model.path, prompt, text, repeat_penalty=1.0)  # a list repeats its markers
    assert with_penalty.logits <= TIE_GAP and with_penalty.logits < without.logits / 2, (with_penalty, without)


def test_banned_end_tokens_are_never_the_top(served):
    engine, model = served
    endless = GenerationSettings(temperature=0.0, max_new_tokens=64, ignore_eos=True)
    messages = [SHOP, {"role": "user", "content": "Hi"}]
    text = answer(engine, messages, endless)  # runs past where the model would have ended
    prompt = model.prompt_tokens(messages)
    assert greedy_deficit(model.path, prompt, text, banned=frozenset(model.stop_ids)).logits <= TIE_GAP
    assert same_or_near_tie(model, messages, text, "", settings=endless) is None


def test_a_text_is_walked_in_the_model_s_own_token_split(served):
    import llama_cpp

    _, model = served
    llm = llama_cpp.Llama(model_path=str(model.path), n_ctx=64, verbose=False, vocab_only=True)
    pieces = TokenTexts(llm)
    options = {pieces.text[t] for t in pieces.continuing(b"matching system")}
    assert {b"m", b"match", b"matching"} <= options and all(b"matching system".startswith(o) for o in options)
