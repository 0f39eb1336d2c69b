"""The answer check: a grounded answer's figures read against the help-center passages and order records it was
given, and the visitor warned about those no source backs (`serving.context.check`), in the engine's stats, the
chat under the answer, a conversation's export and `/chat`.

The check's cases use the shop's real help center (personas/knowledge/shop) through the real context layer. The
engine's wiring is tested twice: with a fake backend that says a fixed answer (the words matter there), and on the
real SmolLM2 with the words left to the model (the check must equal the check of what the visitor was shown).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from serving.config import ServingSettings
from serving.context.check import AnswerCheck, check_answer
from serving.context.layer import ContextLayer, ContextSettings
from serving.context.orders import build_orders_db, read_orders_csv
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from serving.personas import PERSONAS_DIR, load_personas
from tests.fakes import FakeLoader, fake_registry
from training.demo.orders import ORDERS_CSV

PERSONAS = load_personas()
ORDERS = read_orders_csv(ORDERS_CSV)
SHIPPED = [o for o in ORDERS if o.status == "shipped"]
PRICE = "How much is the Nova 4K monitor?"


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> ContextLayer:
    db = build_orders_db(ORDERS_CSV, tmp_path_factory.mktemp("orders") / "orders.sqlite")
    return ContextLayer.from_personas(PERSONAS.personas.values(), PERSONAS_DIR,
                                      ContextSettings(orders_db=db, orders_csv=None))


def context(layer: ContextLayer, question: str, persona: str = "billing_pricing") -> str:
    return layer.for_request(PERSONAS.get(persona), question, lambda text: len(text) // 4, 1536).text


def test_a_price_from_its_own_row_is_backed_and_another_products_price_is_not(layer):
    given = context(layer, PRICE)
    assert "| Nova 4K monitor | $349.00 |" in given and "| Halo ring light | $35.00 |" in given
    assert check_answer("The Nova 4K monitor costs $349.", given, PRICE) == AnswerCheck(figures=2)  # "4K" too
    wrong = check_answer("The Nova 4K monitor comes to $35.00 in total.", given, PRICE)
    assert wrong.unbacked == ("$35.00",) and wrong.figures == 2  # a real price, of the Halo ring light


def test_a_figure_no_source_states_is_unbacked_and_the_visitors_own_is_backed(layer):
    question = "My basket is $45 and I want it fast. What will express delivery cost me?"
    given = context(layer, question, "order_assistant")
    assert "Express shipping costs $12.99" in given and "$45" not in given
    assert check_answer("Express shipping costs $12.99 on any order, so $12.99 on your $45 basket.", given,
                        question).unbacked == ()
    assert check_answer("Express shipping costs $14.99 and arrives in 1 to 2 business days.", given,
                        question).unbacked == ("$14.99",)


def test_a_sentence_without_its_subject_is_backed_by_the_one_before_it(layer):
    question = "What amounts do your gift cards come in?"
    given = context(layer, question)
    assert "$25, $50, $100 and $200" in given
    answer = "Digital gift cards are sent by email.\nIt comes in $25, $50, $100 or $200."
    assert check_answer(answer, given, question) == AnswerCheck(figures=4)
    assert check_answer("It comes in $25, $50, $100 or $200.", given, "What can I buy?").figures == 4


def test_an_order_records_date_backs_only_its_own_order(layer):
    first, second = SHIPPED[0], next(o for o in SHIPPED[1:] if o.shipped != SHIPPED[0].shipped)
    question = f"When did {first.id} and {second.id} ship?"
    given = context(layer, question, "order_assistant")
    day = first.shipped.strftime("%A %-d %B %Y")
    assert day in given
    assert check_answer(f"Order {first.id} shipped on {day}.", given, question).unbacked == ()
    assert check_answer(f"Order {second.id} shipped on {day}.", given, question).unbacked == (day.lower(),)


def test_counts_and_list_numbers_are_not_figures_and_a_made_up_order_number_is(layer):
    question = f"What's in {SHIPPED[0].id}?"
    given = context(layer, question, "order_assistant")
    assert check_answer("1. Open the box.\n2. Count the 2 items.", given, question) == AnswerCheck()
    assert check_answer(f"Order {SHIPPED[0].id} is the same as order BL-12344.", given, question).unbacked == (
        "bl-12344",)


# ---------------------------------------------------------------- the engine, the chat, the export, /chat

def test_the_engine_checks_the_answer_it_showed_against_the_context_it_sent(layer, tmp_path):
    engine = Engine(fake_registry(tmp_path), ServingSettings(ram_budget_mb=1),
                    FakeLoader(["The Nova 4K monitor ", "comes to $35.00", " in total."]), personas=PERSONAS,
                    context=layer)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=8)
    request = ChatRequest("fake-a", [{"role": "user", "content": PRICE}], settings, "c1", persona_id="billing_pricing")
    done = list(engine.stream(request))[-1]
    assert done.stats.check == AnswerCheck(figures=2, unbacked=("$35.00",))  # "4K" backed by the question
    plain = list(engine.stream(replace(request, persona_id=None, conversation_id="c2")))[-1]
    assert plain.stats.sources == () and plain.stats.check is None  # nothing given: nothing to read it against
    begun = [*request.messages, {"role": "assistant", "content": "The Halo ring light is $35.00. The Nova 4K monitor"}]
    continued = list(engine.stream(replace(request, messages=begun, conversation_id="c3")))[-1]
    # the begun answer is read with its continuation, as the visitor keeps it: 4 figures, not the continuation's 2
    assert continued.stats.check == AnswerCheck(figures=4, unbacked=("$35.00",))
    engine.close()


def test_the_warning_shows_under_the_answer_and_in_the_export(registry):
    from pages.chat import Chat, check_html
    from serving.context.render import Source
    from serving.transcript import Conversation, Library, Message, ModelRef, load_transcript, to_json, to_markdown

    source = Source(kind="article", title="Products > Price list", ref="shop/products.md#price-list", excerpt="…")
    warned = AnswerCheck(figures=2, unbacked=("$35.00", "<b>"))
    conversation = Conversation(persona="billing_pricing", model=ModelRef(id="demo-support"), messages=[
        Message(role="user", content=PRICE),
        Message(role="assistant", content="It is $35.00.", sources=[source], check=warned)])
    chat = Chat(Engine(registry, ServingSettings(ram_budget_mb=64)), PERSONAS.group("support"), "test")
    block = chat.view(Library().put(conversation), conversation)[-1]
    assert block.startswith('<p class="iris-check iris-unbacked">⚠ Not found in its sources: <b>$35.00</b>, '
                            "<b>&lt;b&gt;</b>.")
    assert '<details class="iris-sources">' in block and "\n" not in block
    assert check_html(AnswerCheck(figures=3)) == ('<p class="iris-check">The 3 figures in this answer appear in '
                                                  "its sources.</p>")
    assert check_html(AnswerCheck()) == check_html(None) == ""
    assert load_transcript(to_json(conversation), ServingSettings()).messages[1].check == warned
    assert "Not found in its sources: $35.00, <b>" in to_markdown(conversation)


@pytest.mark.slow
def test_on_the_real_model_the_check_is_the_check_of_what_the_visitor_saw(registry, layer):
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048), personas=PERSONAS, context=layer)
    persona = PERSONAS.get("order_assistant")
    question = f"When will {SHIPPED[0].id} arrive, and how much is express shipping?"
    request = ChatRequest("smollm2-135m-instruct", [{"role": "user", "content": question}],
                          GenerationSettings(temperature=0.0, max_new_tokens=48), "real", persona_id=persona.id)
    try:
        events = list(engine.stream(request))
        model = engine.pool._loaded["smollm2-135m-instruct"].model
        prompt = b"".join(model.piece(t) for t in model.scheduler.cached_tokens("real")).decode()
    finally:
        engine.close()
    shown = "".join(e.text for e in events if e.kind == "token")
    # the system turn's context: after the persona prompt, up to the user turn (ChatML's markers have no text)
    system, rest = prompt.split(persona.system_prompt + "\n\n", 1)[1].split(question, 1)
    sent = system.removesuffix("\nuser\n")
    assert sent != system and rest.startswith("\nassistant\n")
    assert SHIPPED[0].describe() in sent and "Express shipping costs" in sent
    assert events[-1].stats.check == check_answer(shown, sent, question)
