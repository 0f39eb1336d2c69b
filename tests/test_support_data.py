"""The real-model support set (data/support) rests on the app's own context: every system turn is what the
serving engine writes for the question, every shop number an answer states is read from the articles and
present in that context, order answers come from the order database, unknown order numbers are never given a
status, and the hand-written held-out set asks what training never answered.

Reads the committed files and the generator; the engine runs with a fake model (byte tokens) and the real
SmolLM2 tokenizer checks the token budget never cuts what the generator sent."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from serving.config import ServingSettings
from serving.context.articles import load_articles
from serving.context.layer import ContextLayer, ContextSettings, question_of
from serving.context.orders import read_orders_csv
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from serving.personas import PERSONAS_DIR, load_personas
from tests.fakes import FakeLoader, fake_registry
from training.demo import support_data as s
from training.demo.datagen import (REPO_ROOT, GROUNDING_N_CTX, Grounding, held_out, quoted_sections,
                                   support_record)
from training.demo.orders import ORDERS_CSV
from training.demo.shop_facts import FactError, shop_facts
from training.stages import task_metric
from training.stages.task_metric import follows_style, invented_facts, says_not_covered, says_not_found, states

DATA = REPO_ROOT / "data" / "support"
SHOP = PERSONAS_DIR / "knowledge" / "shop"
ORDER_IDS = {o.id for o in read_orders_csv(ORDERS_CSV)}


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


TRAIN, TEST, HANDWRITTEN = read("train.jsonl"), read("test.jsonl"), read("heldout_handwritten.jsonl")
STYLES = read("heldout_styles.jsonl")


def given(messages: list[dict]) -> str:
    """What the model was given for the last answer: the system turn and every user turn."""
    return "\n".join(m["content"] for m in messages[:-1] if m["role"] != "assistant")


def user_turns(record: dict) -> list[str]:
    return [m["content"] for m in record["messages"] if m["role"] == "user"]


@pytest.fixture(scope="module")
def orders_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("orders") / "orders.sqlite"


@pytest.fixture(scope="module")
def grounding(orders_db) -> Grounding:
    return Grounding.load(settings=ContextSettings(orders_db=orders_db, orders_csv=ORDERS_CSV))


# ---------------------------------------------------------------- answers rest on their context

def test_no_generated_answer_states_a_fact_its_context_does_not():
    for record in TRAIN + TEST:
        assert invented_facts(record["messages"][-1]["content"], given(record["messages"])) == [], record
    assert sum(bool(r["facts"]) for r in TEST) >= 60
    for record in TEST:
        assert all(states(given(record["messages"]), fact) for fact in record["facts"]), record


def test_the_set_mixes_grounded_answers_unknown_orders_uncovered_and_no_context():
    kinds = Counter(r["kind"] for r in TRAIN)
    assert kinds["policy"] > 1000 and kinds["order"] > 400 and kinds["unknown_order"] > 100
    assert kinds["uncovered"] > 150 and kinds["no_context"] > 100 and kinds["malformed_order"] > 30
    assert set(Counter(r["kind"] for r in TEST)) == {"policy", "order", "unknown_order", "uncovered"}
    personas = load_personas()
    for record in TRAIN:
        system = record["messages"][0]["content"] if record["messages"][0]["role"] == "system" else None
        prompt = personas.get(record["persona"]).system_prompt
        if record["kind"] == "no_context":
            assert system in (None, prompt) and (says_not_covered(record["messages"][-1]["content"]))
        else:
            assert system.startswith(prompt + "\n\n") and len(system) > len(prompt) + 50


def test_order_answers_come_from_the_database_and_unknown_ids_are_never_given_a_status():
    records = {o.id: o for o in read_orders_csv(ORDERS_CSV)}
    for record in TRAIN + TEST:
        answer, ids = record["messages"][-1]["content"], re.findall(r"BL-\d{5}", record["messages"][-1]["content"])
        if record["kind"] == "order":
            order = records[ids[0]]
            assert f"Order {order.id}: status {order.status}" in given(record["messages"])
            assert order.carrier is None or order.status not in ("shipped", "delivered") or \
                "cancel" in user_turns(record)[-1].lower() or order.carrier in answer or order.id in answer
        if record["kind"] == "unknown_order":
            assert ids and ids[0] not in ORDER_IDS and says_not_found(answer)
            assert f"No order found with id {ids[0]}." in given(record["messages"])


def test_policy_numbers_are_read_from_the_articles(tmp_path, orders_db):
    personas = tmp_path / "personas"
    shutil.copytree(PERSONAS_DIR, personas)
    shipping = personas / "knowledge" / "shop" / "shipping.md"
    shipping.write_text(shipping.read_text(encoding="utf-8").replace("costs $4.99", "costs $5.49"), encoding="utf-8")
    settings = ContextSettings(orders_db=orders_db, orders_csv=ORDERS_CSV)
    changed = Grounding.load(personas, settings)
    rng = random.Random(3)
    records = [support_record(changed, rng) for _ in range(1500)]
    # an order's breakdown states the shipping its record says was charged; the policy answers state the article's
    answers = [r["messages"][-1]["content"] for r in records if r["kind"] != "order"]
    assert any("$5.49" in a for a in answers) and not any("$4.99" in a for a in answers)
    shipping.write_text(shipping.read_text(encoding="utf-8").replace("## Shipping costs", "## Costs"), encoding="utf-8")
    with pytest.raises(FactError, match=r"shipping.md: no section '## Shipping costs'"):
        shop_facts(personas / "knowledge" / "shop")


# ---------------------------------------------------------------- the system turn is the engine's

def _sample(records: list[dict], every: int) -> list[dict]:
    return [r for r in records[::every] if r["kind"] != "no_context"]


def test_system_turns_are_what_the_serving_engine_writes(tmp_path, orders_db):
    """Each dialogue's conversation goes through `Engine.complete` with its persona (a fake model whose byte
    tokens give the context budget room): the prompt the engine builds holds exactly the record's system turn."""
    personas = load_personas()
    context = ContextLayer.from_personas(personas.personas.values(), PERSONAS_DIR,
                                         ContextSettings(orders_db=orders_db, orders_csv=ORDERS_CSV))
    loader = FakeLoader(["ok"])
    engine = Engine(fake_registry(tmp_path, 16384), ServingSettings(ram_budget_mb=1), loader, personas, context)
    one = GenerationSettings(temperature=0.0, max_new_tokens=1)
    try:
        for record in _sample(TRAIN, 15) + TEST:
            conversation = [m for m in record["messages"][:-1] if m["role"] != "system"]
            engine.complete(ChatRequest("fake-a", conversation, one, persona_id=record["persona"]))
            sent = bytes(loader.loaded[0].prompts[-1]).decode("utf-8")
            assert sent == loader.loaded[0].render(record["messages"][:-1]), record
    finally:
        engine.close()


def test_the_real_tokenizer_budget_keeps_every_passage_the_generator_sent(smollm2_gguf, grounding):
    """The generator counts tokens at four characters each; with SmolLM2's tokenizer, at the eval's context size
    and the app's, the context layer gives the same context (the budget never cuts a support question's)."""
    from llama_cpp import Llama

    vocab = Llama(str(smollm2_gguf), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    layer = grounding.layer
    for record in _sample(TRAIN, 10) + TEST:
        persona = grounding.personas[record["persona"]]
        for n_ctx in (GROUNDING_N_CTX, 4096):
            context = layer.for_request(persona, question_of(user_turns(record)), count,
                                        layer.settings.budget_tokens(n_ctx))
            assert grounding.system_turn(record["persona"], context) == record["messages"][0]["content"]


# ---------------------------------------------------------------- held-out questions

def test_generated_test_phrasings_never_occur_in_training():
    firsts = {user_turns(r)[0].lower() for r in TRAIN}
    held = [o for i in s.INTENTS for c in i.cases if c.grounded for o in held_out(c.real_openers())]
    held += [held_out(q)[0] for q in s.ORDER_QUESTIONS.values()]
    for opener in held:
        longest = max(re.split(r"\{\w+\}", opener.lower()), key=len).strip()
        if len(longest) >= 10:
            assert not any(longest in first for first in firsts), opener
    assert len(TEST) == 150 and len({r["intent"] for r in TEST}) >= 7


def _masked(text: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", " ", text.lower())).strip()


def test_no_hand_written_answer_appears_in_training():
    answers = {_masked(r["messages"][-1]["content"]) for r in TRAIN}
    joined = "\n".join(answers)
    for row in HANDWRITTEN:
        assert _masked(row["messages"][-1]["content"]) not in joined, row["id"]
        assert _masked(row["messages"][0]["content"]) not in {_masked(t) for r in TRAIN for t in user_turns(r)}


def test_sections_the_hand_written_set_asks_about_are_quoted_by_no_training_answer():
    never = {ref for row in HANDWRITTEN if row["note"] == "never_quoted" for ref in row["source"]}
    assert never and never <= s.HELDOUT_SECTIONS and not quoted_sections() & s.HELDOUT_SECTIONS
    passages = {p.ref: p.text for a in load_articles(SHOP) for p in a.passages}
    shingles = {tuple(words[i:i + 8]) for ref in s.HELDOUT_SECTIONS
                for words in [re.findall(r"\w+", passages[ref].lower())] for i in range(len(words) - 7)}
    for record in TRAIN:
        words = re.findall(r"\w+", record["messages"][-1]["content"].lower())
        assert not {tuple(words[i:i + 8]) for i in range(len(words) - 7)} & shingles, record


def test_hand_written_rows_are_well_formed_and_their_answers_true(grounding):
    kinds = Counter(row["kind"] for row in HANDWRITTEN)
    assert 40 <= len(HANDWRITTEN) <= 60 and kinds["policy"] >= 20 and min(kinds.values()) >= 8
    assert len({row["id"] for row in HANDWRITTEN}) == len(HANDWRITTEN)
    for row in HANDWRITTEN:
        question, answer = (m["content"] for m in row["messages"])
        ids = re.findall(r"BL-\d{5}", answer)
        assert (ids[0] in ORDER_IDS) == (row["kind"] == "order") if ids else row["kind"] in ("policy", "uncovered")
        assert all(states(answer, fact) for fact in row["facts"]) and (row["facts"] or row["kind"] != "order")
        context = grounding.context(row["persona"], [question])
        assert invented_facts(answer, grounding.system_turn(row["persona"], context) + "\n" + question) == [], row
        assert set(row["source"]) <= {source.ref for source in context.sources}, row["id"]
        assert says_not_found(answer) == (row["kind"] == "unknown_order")
        assert says_not_covered(answer) == (row["kind"] == "uncovered"), row["id"]


# ---------------------------------------------------------------- persona layouts (issue 23 item 6)

def test_training_teaches_each_persona_layout_and_every_reference_answer_follows_it():
    styles = Counter(r.get("style") for r in TRAIN)
    assert all(styles[style] >= 50 for style in task_metric.STYLES), styles
    for record in TRAIN + TEST + STYLES:
        if record.get("style"):
            assert follows_style(record["messages"][-1]["content"], record["style"]), record
    persona_of = {"breakdown": "billing_pricing", "pros_cons": "sales_advisor", "novice": "technical_support",
                  "expert": "technical_support"}
    assert all(persona_of[r["style"]] == r["persona"] for r in TRAIN + STYLES if r.get("style"))


def test_a_breakdown_adds_up_from_the_order_record():
    orders = {o.id: o for o in read_orders_csv(ORDERS_CSV)}
    breakdowns = [r for r in TRAIN if r.get("style") == "breakdown"]
    for record in breakdowns:
        answer = record["messages"][-1]["content"]
        order = orders[re.search(r"BL-\d{5}", answer).group(0)]
        assert order.subtotal + order.shipping == order.total
        shipping = f"${order.shipping}" if order.shipping else "free"
        assert [f"${order.subtotal}", shipping, f"${order.total}"] == re.findall(
            r"(\$[\d.]+|free)(?= in total|\.\n3|, paid)", answer), answer
    assert {bool(orders[re.search(r"BL-\d{5}", r["messages"][-1]["content"]).group(0)].shipping)
            for r in breakdowns} == {True, False}  # charged and free shipping both taught


def test_expertise_is_stated_in_held_out_words_and_the_answer_keeps_every_fact():
    for level, markers in s.EXPERTISE.items():
        assert not any(markers[-1].strip().lower() in user_turns(r)[0].lower() for r in TRAIN), level
        tested = [r for r in TEST if r.get("style") == level]
        assert tested and all(user_turns(r)[0].startswith(markers[-1]) for r in tested)
        assert all(states(r["messages"][-1]["content"], fact) for r in tested for fact in r["facts"])


def test_hand_written_layout_questions_are_answerable_from_their_context(grounding):
    assert Counter(r["style"] for r in STYLES) == {style: 4 if style != "novice" and style != "expert" else 2
                                                   for style in task_metric.STYLES}
    firsts = {_masked(t) for r in TRAIN for t in user_turns(r)}
    for row in STYLES:
        question, answer = (m["content"] for m in row["messages"])
        assert _masked(question) not in firsts and all(states(answer, fact) for fact in row["facts"]), row["id"]
        context = grounding.context(row["persona"], [question])
        assert invented_facts(answer, grounding.system_turn(row["persona"], context) + "\n" + question) == [], row
