"""Deterministic generator of the demo models' bundled data (`python -m training.demo.datagen`).

Writes data/demo/{support,support_test,general,study}.jsonl (chat records
`{"messages": [{"role", "content"}, ...]}`; support records also carry their `intent`)
and data/demo/corpus.txt (plain paragraphs for pretraining), and data/support/{train,test}.jsonl,
the real-model support set: each dialogue's system turn is what the app sends for its last question
(the persona prompt, then the passages and order records `serving.context` gives it, through the same
`ContextLayer`), shop numbers come from the help-center articles (`shop_facts`), order answers from the
order records; and a test split whose customer phrasings never occur in training, each test record
carrying the facts its answer must state (`facts`). docs/grounded-support.md describes the set.
Same seed, same bytes: all randomness comes from one `random.Random(seed)` per file. It only writes
text; tokenizing and training live in `pretrain`/`finetune`.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from serving.context.layer import ContextLayer, ContextSettings, question_of
from serving.context.orders import Order, day, read_orders_csv
from serving.context.render import RequestContext, system_text
from serving.personas import Persona, load_personas
from serving.study.grounded import sentences
from training.demo import general_data as g
from training.demo import support_data as s
from training.demo.shop_facts import fact_values, shop_facts

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "demo"
SUPPORT_DATA_DIR = REPO_ROOT / "data" / "support"
PERSONAS_DIR = REPO_ROOT / "personas"
# Which app persona answers each intent (the support page's personas, personas/*.yaml).
PERSONA_OF_INTENT = {"order_status": "order_assistant", "shipping": "order_assistant",
                     "refund_return": "order_assistant", "cancellation": "order_assistant",
                     "payment": "billing_pricing", "billing_pricing": "billing_pricing",
                     "account_login": "technical_support", "technical": "technical_support",
                     "product_question": "sales_advisor"}
Record = dict


@dataclass(frozen=True)
class DataSizes:
    """How many records each bundled file gets."""

    support: int = 1200
    """Support dialogues for fine-tuning."""
    support_test: int = 100
    """Held-out support dialogues (not in `support`)."""
    general: int = 1500
    """General assistant chats."""
    study: int = 1500
    """Study-style chats."""
    corpus: int = 1500
    """Plain-text paragraphs."""
    support_train: int = 3000
    """Real-model support dialogues (data/support/train.jsonl)."""
    support_heldout: int = 150
    """Real-model held-out dialogues with unseen phrasings (data/support/test.jsonl)."""


# ---------------------------------------------------------------- helpers


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def chat(*turns: str, system: str | None = None) -> list[dict]:
    """Alternate user/assistant turns into a messages list."""
    messages = [{"role": "system", "content": system}] if system else []
    roles = ("user", "assistant")
    return messages + [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


_SHORTHAND = (("you", "u"), ("please", "pls"), ("I'm", "im"), ("don't", "dont"), ("it's", "its"),
              ("can't", "cant"), ("haven't", "havent"), ("thanks", "thx"), ("are", "r"))


def add_typos(text: str, rng: random.Random) -> str:
    """Make a customer message look typed in a hurry (case, shorthand, a swapped letter, punctuation)."""
    if rng.random() < 0.3:
        for word, short in _SHORTHAND:
            if rng.random() < 0.6:
                text = text.replace(f" {word} ", f" {short} ").replace(f"{cap(word)} ", f"{cap(short)} ")
    if rng.random() < 0.25:
        words = text.split(" ")
        i = rng.randrange(len(words))
        w = words[i]
        if len(w) > 3 and w.isalpha():
            j = rng.randrange(len(w) - 1)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        text = " ".join(words)
    if rng.random() < 0.3:
        text = text.lower()
    if rng.random() < 0.2:
        text = text.rstrip(".?!") + rng.choice(("", "??", "!!", " ?"))
    return text


def support_slots(rng: random.Random) -> dict[str, str]:
    number = rng.randint(10000, 99999)
    return {
        "order": f"BL-{number}", "product": rng.choice(s.PRODUCTS), "gadget": rng.choice(s.GADGETS),
        "days": str(rng.randint(2, 5)), "weekday": rng.choice(s.WEEKDAYS), "carrier": rng.choice(s.CARRIERS),
        "payment": rng.choice(s.PAYMENT_METHODS), "device": rng.choice(s.DEVICES), "plan": rng.choice(s.PLANS),
        "city": rng.choice(s.CITIES), "country": rng.choice(s.COUNTRIES),
        "order_typed": rng.choice((f"BL-{number}", f"#BL-{number}", f"bl{number}", f"BL{number}", f"#{number}")),
    }


# ---------------------------------------------------------------- support dialogues


def _customer(template: str, slots: dict[str, str], rng: random.Random) -> str:
    text = template.format(**{**slots, "order": slots["order_typed"]})
    greeting = rng.choice(("", "", "", "Hi, ", "Hello, ", "hey ", "Good morning, "))
    return add_typos(greeting + (text if not greeting else text[:1].lower() + text[1:]), rng)


def _exchanges(rng: random.Random, intent: s.Intent, case: s.Case, slots: dict[str, str], openers: tuple[str, ...],
               vague_share: float) -> list[str]:
    """The customer's question (sometimes vague first, then the order number), the reply, maybe a follow-up."""
    turns: list[str] = []
    if case.vague and rng.random() < vague_share:
        turns += [_customer(rng.choice(case.vague), slots, rng), rng.choice(s.ASK_ORDER)]
        turns.append(add_typos(rng.choice(s.GIVE_ORDER).format(order=slots["order_typed"]), rng))
    else:
        turns.append(_customer(rng.choice(openers), slots, rng))
    turns.append(rng.choice(case.replies).format(**slots))
    follow_ups = case.follow_ups + intent.follow_ups
    if follow_ups and rng.random() < 0.4:
        question, answer = rng.choice(follow_ups)
        turns += [add_typos(question, rng), answer.format(**slots)]
    return turns


def support_dialogue(rng: random.Random, facts: dict[str, str]) -> Record:
    """One support conversation: 1 to 3 exchanges, sometimes with a system prompt (`facts`: the shop facts)."""
    intent = rng.choice(s.INTENTS)
    case = rng.choice(intent.cases)
    slots = support_slots(rng) | facts
    turns = _exchanges(rng, intent, case, slots, case.openers, vague_share=0.35)
    if rng.random() < 0.15:
        turns += list(rng.choice(s.THANKS))
    system = rng.choice(s.SYSTEM_PROMPTS) if rng.random() < 0.35 else None
    return {"intent": intent.name, "messages": chat(*turns, system=system)}


# ---------------------------------------------------------------- real-model support set: answers from context


def held_out(openers: tuple[str, ...]) -> tuple[str, ...]:
    """The phrasing kept for testing: every case's last opener (each case has at least two)."""
    return openers[-1:] if len(openers) >= 2 else ()


def _trained(phrasings: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in phrasings if p not in held_out(phrasings))


def slot_names(template: str) -> list[str]:
    """The `{slot}`s of a template, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def reply_facts(template: str, values: dict[str, str], order_id: str | None = None) -> list[str]:
    """Facts an answer from `template` must state: the values of its fact slots (shop facts, order record
    fields; not wording slots such as {product}), then the order id the customer gave."""
    facts = [values[name] for name in slot_names(template) if name in values]
    return list(dict.fromkeys(facts + ([order_id] if order_id and "{order}" in template else [])))


@dataclass(frozen=True)
class Grounding:
    """What the real-model set is written from: the app's personas, its context layer (the same retrieval and
    order lookup a visitor's question goes through), the shop facts of the articles, and the order records."""

    personas: dict[str, Persona]
    layer: ContextLayer
    facts: dict[str, str]
    orders: tuple[Order, ...]

    @classmethod
    def load(cls, personas_dir: Path = PERSONAS_DIR, settings: ContextSettings = ContextSettings()) -> Grounding:
        book = load_personas(personas_dir)
        personas = {pid: book.get(pid) for pid in sorted(set(PERSONA_OF_INTENT.values()))}
        knowledge = {p.knowledge_dir(personas_dir) for p in personas.values()}
        if len(knowledge) != 1 or None in knowledge:
            raise ValueError(f"the support personas must share one knowledge folder, not {sorted(map(str, knowledge))}")
        return cls(personas, ContextLayer.from_personas(personas.values(), personas_dir, settings),
                   fact_values(shop_facts(knowledge.pop())), tuple(read_orders_csv(settings.orders_csv)))

    def context(self, persona_id: str, user_turns: list[str]) -> RequestContext:
        """The context the engine gives `persona_id`'s answer to the last of `user_turns` (`Engine._grounded`)."""
        return self.layer.for_request(self.personas[persona_id], question_of(user_turns), estimate_tokens,
                                      self.layer.settings.budget_tokens(GROUNDING_N_CTX))

    def system_turn(self, persona_id: str, context: RequestContext | None) -> str:
        """The persona's system turn: its prompt, then the context (None: a persona without knowledge)."""
        return system_text(self.personas[persona_id].system_prompt, context.text if context else "")


def estimate_tokens(text: str) -> int:
    """Tokens of `text` at about four characters a token: the budget never binds on a support question's
    four passages and order lines (tests check the model's tokenizer gives the same context)."""
    return len(text) // 4 + 1


def typed_order(order_id: str, rng: random.Random) -> str:
    """`order_id` as a customer types it."""
    number = order_id[3:]
    return rng.choice((f"BL-{number}", f"#BL-{number}", f"bl{number}", f"BL{number}", f"#{number}"))


def unknown_order_id(ground: Grounding, rng: random.Random) -> str:
    known = {o.id for o in ground.orders}
    while (order_id := f"BL-{rng.randint(10000, 99999)}") in known:
        pass
    return order_id


def record_values(order: Order) -> dict[str, str]:
    """An order record as reply slots, dates written as the context layer writes them."""
    return {"order": order.id, "items": order.items, "ordered": day(order.ordered), "shipped": day(order.shipped),
            "expected": day(order.expected), "delivered": day(order.delivered), "carrier": order.carrier,
            "tracking": order.tracking, "total": f"${order.total}", "payment": order.payment,
            "method": order.shipping_method, "subtotal": f"${order.subtotal}",
            "shipping_cost": f"${order.shipping}" if order.shipping else "free"}


@dataclass(frozen=True)
class Draft:
    """One real-model dialogue before its system turn: who answers, the user turns, the answer and its facts."""

    kind: str
    """policy | order | unknown_order | malformed_order | uncovered | no_context."""
    intent: str
    persona: str
    turns: list[str]
    """User, assistant, user, ... ending with the answer."""
    facts: list[str]
    needs: tuple[str, ...] = ()
    """Passages the context must hold for the answer to rest on it."""
    order: str | None = None
    """The order id whose record (or "not found" line) the context must hold."""
    style: str = ""
    """The answer's layout when the persona asks for one (`task_metric.STYLES`), else ""."""


def _ask(slots: dict[str, str], rng: random.Random, opener: str, vague: tuple[str, ...]) -> list[str]:
    """The customer's question: the opener, or (sometimes, in training) a vague one, the order-number request and
    the number."""
    if vague and rng.random() < 0.3:
        return [_customer(rng.choice(vague), slots, rng), rng.choice(s.ASK_ORDER),
                add_typos(rng.choice(s.GIVE_ORDER).format(order=slots["order_typed"]), rng)]
    return [_customer(opener, slots, rng)]


def policy_draft(ground: Grounding, rng: random.Random, test: bool) -> Draft:
    """A help-center question (`test`: in its held-out phrasing) and the case's grounded answer."""
    intent = rng.choice([i for i in s.INTENTS if any(c.grounded for c in i.cases)])
    case = rng.choice([c for c in intent.cases if c.grounded])
    opener = held_out(case.real_openers())[0] if test else rng.choice(_trained(case.real_openers()))
    slots = support_slots(rng)
    order = None
    if "{order}" in opener:
        order = rng.choice([o for o in ground.orders if not case.order_status or o.status in case.order_status])
        slots |= {"order": order.id, "order_typed": typed_order(order.id, rng)}
    template = rng.choice(case.grounded)
    answer = template.format(**(slots | ground.facts))
    draft = Draft("policy", intent.name, PERSONA_OF_INTENT[intent.name], [_customer(opener, slots, rng), answer],
                  reply_facts(template, ground.facts, order and order.id), case.source, order and order.id,
                  case.style)
    if draft.persona == "technical_support" and not draft.style and rng.random() < 0.5:
        return with_expertise(draft, rng.choice(tuple(s.EXPERTISE)), rng, test)
    return draft


def with_expertise(draft: Draft, level: str, rng: random.Random, test: bool) -> Draft:
    """`draft` asked by a customer who states their expertise (`level`: novice | expert), answered at that depth:
    the same facts as plain numbered steps for a beginner, as one short paragraph for an expert."""
    markers = s.EXPERTISE[level]
    marker = markers[-1] if test else rng.choice(markers[:-1])
    question = marker + draft.turns[0][:1].lower() + draft.turns[0][1:]
    steps = sentences(draft.turns[-1])
    lead, end = rng.choice(s.EXPERTISE_LEADS[level]), rng.choice(s.EXPERTISE_ENDS[level])
    body = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1)) if level == "novice" else " ".join(steps)
    answer = "\n".join(part for part in (lead, body, end) if part) if level == "novice" else f"{lead} {body}"
    return replace(draft, turns=[question, *draft.turns[1:-1], answer], style=level)


def order_draft(ground: Grounding, rng: random.Random, test: bool) -> Draft:
    """A question about an order in the database, answered from its record."""
    aspect = rng.choice(tuple(s.ORDER_QUESTIONS))
    replies = s.ORDER_REPLIES[aspect]
    order = rng.choice([o for o in ground.orders if "any" in replies or o.status in replies])
    template = replies.get(order.status, replies.get("any"))
    questions = s.ORDER_QUESTIONS[aspect]
    opener = held_out(questions)[0] if test else rng.choice(_trained(questions))
    slots = support_slots(rng) | {"order": order.id, "order_typed": typed_order(order.id, rng)}
    values = record_values(order) | ground.facts
    turns = _ask(slots, rng, opener, () if test else s.VAGUE_ORDER_QUESTIONS.get(aspect, ()))
    facts = reply_facts(template, {k: v for k, v in values.items() if k not in ("items", "method")}, order.id)
    if order.status in ("processing", "cancelled", "returned") and aspect == "status":
        facts.append(order.status)
    if aspect == "items":
        facts += [item.split(" x ", 1)[1] for item in order.items.split("; ")]
    persona = "billing_pricing" if aspect in ("paid", "breakdown") else "order_assistant"
    intent = "cancellation" if aspect == "cancel" else "order_status"
    return Draft("order", intent, persona, turns + [template.format(**(slots | values))], facts,
                 s.ORDER_SOURCES.get((aspect, order.status), ()), order.id, "breakdown" if aspect == "breakdown" else "")


def unknown_order_draft(ground: Grounding, rng: random.Random, test: bool) -> Draft:
    """A question naming a well-formed order number that is not in the database: it cannot be found."""
    aspect = rng.choice(("status", "paid", "cancel"))
    questions = s.ORDER_QUESTIONS[aspect]
    opener = held_out(questions)[0] if test else rng.choice(_trained(questions))
    order_id = unknown_order_id(ground, rng)
    slots = support_slots(rng) | {"order": order_id, "order_typed": typed_order(order_id, rng)}
    answer = rng.choice(s.UNKNOWN_ORDER_REPLIES).format(order=order_id)
    return Draft("unknown_order", "order_status", "order_assistant", [_customer(opener, slots, rng), answer],
                 [], (), order_id)


def malformed_order_draft(ground: Grounding, rng: random.Random, test: bool) -> Draft:
    """Text written like an order number that is not one: the expected format."""
    typed = rng.choice(("BL-", "#", "BL")) + str(rng.randint(10, 9999))
    question = rng.choice(s.MALFORMED_ORDER_QUESTIONS).format(typed=typed)
    return Draft("malformed_order", "order_status", "order_assistant",
                 [question, s.MALFORMED_ORDER_REPLY.format(typed=typed)], [])


def uncovered_draft(ground: Grounding, rng: random.Random, test: bool) -> Draft:
    """A question no article answers: not covered, a human agent offered."""
    questions = s.UNCOVERED_QUESTIONS[-UNCOVERED_HELD_OUT:] if test else s.UNCOVERED_QUESTIONS[:-UNCOVERED_HELD_OUT]
    slots = support_slots(rng)
    return Draft("uncovered", "uncovered", rng.choice(sorted(ground.personas)),
                 [_customer(rng.choice(questions), slots, rng), rng.choice(s.UNCOVERED_REPLIES)], [])


def no_context_draft(ground: Grounding, rng: random.Random, test: bool) -> Draft:
    """A shop question with no context at all: the answer says it cannot know."""
    draft = rng.choice((policy_draft, order_draft))(ground, rng, test)
    return replace(draft, kind="no_context", turns=draft.turns[:-1] + [rng.choice(s.NO_CONTEXT_REPLIES)], facts=[],
                   needs=(), order=None, style="")


# (draft maker, share of the training split, share of the generated test split)
DRAFTS = ((policy_draft, 0.5, 0.45), (order_draft, 0.22, 0.25), (unknown_order_draft, 0.08, 0.15),
          (malformed_order_draft, 0.02, 0.0), (uncovered_draft, 0.1, 0.15), (no_context_draft, 0.08, 0.0))
UNCOVERED_HELD_OUT = 4
"""The last uncovered questions, kept for the generated test split."""
GROUNDING_N_CTX = 2048
"""Context size the context budget is computed for: the eval engine's (min(2048, n_ctx)); the app's 4096 gives
the same passages (the budget does not bind; tests check both)."""


def grounds(draft: Draft, context: RequestContext) -> bool:
    """Whether `context` holds what the answer rests on: its passages, and its order's record or not-found line."""
    refs = {source.ref for source in context.sources}
    if not set(draft.needs) <= refs:
        return False
    if draft.kind == "unknown_order":
        return f"No order found with id {draft.order}." in context.text
    return draft.order is None or draft.order in refs


def support_record(ground: Grounding, rng: random.Random, test: bool = False) -> Record:
    """One real-model dialogue whose system turn is what the app sends for its last question; drafts whose
    context misses what the answer rests on (retrieval ranked the passage out) are drawn again."""
    makers, train_weights, test_weights = zip(*DRAFTS)
    while True:
        draft = rng.choices(makers, test_weights if test else train_weights)[0](ground, rng, test)
        asked = draft.turns[:-1:2]
        context = None if draft.kind == "no_context" else ground.context(draft.persona, asked)
        if context is None or grounds(draft, context):
            break
    system = ground.system_turn(draft.persona, context)
    if draft.kind == "no_context" and rng.random() < 0.3:
        system = None
    record = {"intent": draft.intent, "kind": draft.kind, "persona": draft.persona,
              "messages": chat(*draft.turns, system=system)}
    record |= {"style": draft.style} if draft.style else {}
    return {**record, "facts": draft.facts} if test else record


# ---------------------------------------------------------------- general assistant


def _greeting(rng: random.Random) -> list[dict]:
    hello = rng.choice(("Hi!", "Hello", "hey there", "Good morning!", "Hi, how are you?", "hello!!"))
    reply = rng.choice(("Hello! How can I help you today?", "Hi there! What can I do for you?",
                        "I'm doing well, thank you! How can I help?"))
    return chat(hello, reply)


def _identity(rng: random.Random) -> list[dict]:
    question = rng.choice(("Who are you?", "What can you do?", "what are you", "Are you a robot?"))
    return chat(question, "I'm Iris, a small assistant. I can answer simple questions, explain school topics "
                          "and help with short writing tasks.")


def _country(rng: random.Random) -> list[dict]:
    country, capital, continent, language = rng.choice(g.COUNTRIES)
    return rng.choice((
        chat(f"What is the capital of {country}?", f"The capital of {country} is {capital}."),
        chat(f"What language do people speak in {country}?", f"People in {country} mainly speak {language}."),
        chat(f"Where is {country}?", f"{country} is in {continent}. Its capital is {capital}."),
        chat(f"Tell me about {capital}.", f"{capital} is the capital city of {country}, in {continent}."),
    ))


def _animal(rng: random.Random) -> list[dict]:
    animal, kind, habitat, diet, fact = rng.choice(g.ANIMALS)
    return rng.choice((
        chat(f"Tell me about the {animal}.",
             f"The {animal} is a {kind} that lives in {habitat}. It eats {diet}, and {fact}."),
        chat(f"What does a {animal} eat?", f"A {animal} mostly eats {diet}."),
        chat(f"Where do {animal}s live?", f"{cap(animal)}s live in {habitat}."),
        chat(f"Give me a fun fact about the {animal}.", f"Here is one: {fact}."),
    ))


def _arithmetic(rng: random.Random) -> list[dict]:
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    op, word, value = rng.choice((("+", "plus", a + b), ("*", "times", a * b), ("-", "minus", a - b)))
    question = rng.choice((f"What is {a} {word} {b}?", f"what's {a} {op} {b}", f"Can you calculate {a} {op} {b}?"))
    return chat(question, f"{a} {word} {b} is {value}.")


def _advice(rng: random.Random) -> list[dict]:
    topic, tips = rng.choice(g.ADVICE)
    question = rng.choice((f"How can I {topic}?", f"Any tips to {topic}?", f"I want to {topic}. What should I do?"))
    steps = "\n".join(f"{i}. {cap(t)}." for i, t in enumerate(tips, 1))
    return chat(question, f"Here are three tips to {topic}:\n{steps}")


def _colour(rng: random.Random) -> list[dict]:
    a, b, mix = rng.choice(g.COLOURS)
    return chat(f"What colour do you get when you mix {a} and {b}?", f"Mixing {a} and {b} gives {mix}.")


def _thanks_chat(rng: random.Random) -> list[dict]:
    first = rng.choice((_country, _animal, _colour, _arithmetic))(rng)
    return first + chat("Thank you!", rng.choice(("You're welcome!", "Happy to help!", "Anytime!")))


_GENERAL: tuple[Callable[[random.Random], list[dict]], ...] = (
    _greeting, _identity, _country, _country, _animal, _animal, _arithmetic, _advice, _advice, _colour,
    _thanks_chat,
)


def general_record(rng: random.Random) -> Record:
    return {"messages": rng.choice(_GENERAL)(rng)}


# ---------------------------------------------------------------- study


def _define(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    question = rng.choice((f"What is {term}?", f"Define {term}.", f"what does {term} mean?", f"What's {term}?"))
    return chat(question, f"{cap(term)} is {definition}. {explanation}.")


def _explain(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    question = rng.choice((f"Explain {term} in simple terms.", f"Can you explain {term} to me?",
                           f"I don't understand {term}. Can you help?"))
    return chat(question, f"Sure. {cap(term)} is {definition}. {explanation}. For example, think of {example}.")


def _example(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    return chat(f"Give me an example of {term}.", f"A good example of {term} is {example}.")


def _flashcard(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    return chat(f"Make a flashcard for {term}.", f"Front: What is {term}?\nBack: {cap(definition)}.")


_STUDY_FORMS = (_define, _define, _explain, _explain, _example, _flashcard)


def _multiple_choice(rng: random.Random) -> list[dict]:
    options = rng.sample(g.CONCEPTS, 3)
    answer = rng.randrange(3)
    term, _, definition, explanation, _ = options[answer]
    letters = "ABC"
    listed = " ".join(f"{letters[i]}) {o[0]}" for i, o in enumerate(options))
    return chat(f"Quiz: which of these is {definition}? {listed}",
                f"The answer is {letters[answer]}) {term}. {explanation}.")


def _true_false(rng: random.Random) -> list[dict]:
    (term, _, definition, _, _), other = rng.sample(g.CONCEPTS, 2)
    if rng.random() < 0.5:
        return chat(f"True or false: {term} is {definition}.", f"True. {cap(term)} is {definition}.")
    return chat(f"True or false: {term} is {other[2]}.",
                f"False. {cap(term)} is {definition}. The statement describes {other[0]}.")


def _quiz_dialogue(rng: random.Random) -> list[dict]:
    term, subject, definition, explanation, _ = rng.choice(g.CONCEPTS)
    right = rng.random() < 0.6
    guess = definition if right else rng.choice(g.CONCEPTS)[2]
    verdict = "Correct!" if right and guess == definition else f"Not quite. {cap(term)} is {definition}."
    return chat(f"Quiz me on {subject}.", f"Here is a question: what is {term}?",
                f"I think it is {guess}.", f"{verdict} {explanation}.")


def study_record(rng: random.Random) -> Record:
    roll = rng.random()
    if roll < 0.15:
        return {"messages": _multiple_choice(rng)}
    if roll < 0.25:
        return {"messages": _true_false(rng)}
    if roll < 0.35:
        return {"messages": _quiz_dialogue(rng)}
    form = rng.choice(_STUDY_FORMS)
    return {"messages": form(*_concept_fields(rng), rng)}


def _concept_fields(rng: random.Random) -> tuple[str, str, str, str]:
    term, _, definition, explanation, example = rng.choice(g.CONCEPTS)
    return term, definition, explanation, example


# ---------------------------------------------------------------- plain-text corpus


def _concept_paragraph(rng: random.Random) -> str:
    term, subject, definition, explanation, example = rng.choice(g.CONCEPTS)
    return (f"{cap(term)} is {definition}. {explanation}. A simple example is {example}. "
            f"Students usually learn about {term} in {subject} lessons.")


def _country_paragraph(rng: random.Random) -> str:
    country, capital, continent, language = rng.choice(g.COUNTRIES)
    return (f"{country} is a country in {continent}. Its capital is {capital}, and most people there speak "
            f"{language}. Many visitors travel to {capital} every year.")


def _animal_paragraph(rng: random.Random) -> str:
    animal, kind, habitat, diet, fact = rng.choice(g.ANIMALS)
    return (f"The {animal} is a {kind} that lives in {habitat}. It eats {diet}. "
            f"One interesting fact about the {animal} is that {fact}.")


def _story_paragraph(rng: random.Random) -> str:
    p = {k: rng.choice(v) for k, v in g.STORY_PARTS.items()}
    return (f"Once upon a time, in {p['place']}, there lived {p['role']} named {p['name']}. "
            f"{p['name']} wanted to {p['goal']}. But {p['obstacle']}. {p['name']} did not give up, "
            f"kept trying every day, {p['ending']}.")


def _advice_paragraph(rng: random.Random) -> str:
    topic, tips = rng.choice(g.ADVICE)
    return f"If you want to {topic}, there are a few simple habits that help. First, {tips[0]}. " \
           f"Second, {tips[1]}. Finally, {tips[2]}."


def _catalogue_paragraph(rng: random.Random) -> str:
    first, second = rng.sample(s.PRODUCTS, 2)
    slots = {"product": first, "product2": second, "shop": s.SHOP, "number": rng.randint(10000, 99999)}
    return " ".join(cap(line.format(**slots)) for line in rng.sample(g.CATALOGUE, 3))


_PARAGRAPHS = (_concept_paragraph, _concept_paragraph, _country_paragraph, _animal_paragraph,
               _story_paragraph, _story_paragraph, _advice_paragraph, _catalogue_paragraph)


def corpus_paragraph(rng: random.Random) -> str:
    return rng.choice(_PARAGRAPHS)(rng)


# ---------------------------------------------------------------- files


def _records(make: Callable[[random.Random], Record], n: int, seed: int, exclude: set[str] = frozenset()
             ) -> Iterator[Record]:
    rng = random.Random(seed)
    produced = 0
    while produced < n:
        record = make(rng)
        if json.dumps(record["messages"]) not in exclude:
            produced += 1
            yield record


def _write_jsonl(path: Path, records: list[Record]) -> None:
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(out_dir: Path = DEFAULT_DATA_DIR, seed: int = 0, sizes: DataSizes = DataSizes(),
             support_dir: Path = SUPPORT_DATA_DIR) -> dict[str, Path]:
    """Write every bundled file under `out_dir` (and the real-model set under `support_dir`); returns {name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    facts = fact_values(shop_facts())
    support = list(_records(lambda rng: support_dialogue(rng, facts), sizes.support, seed))
    seen = {json.dumps(r["messages"]) for r in support}
    files = {
        "support": support,
        "support_test": list(_records(lambda rng: support_dialogue(rng, facts), sizes.support_test, seed + 1, seen)),
        "general": list(_records(general_record, sizes.general, seed + 2)),
        "study": list(_records(study_record, sizes.study, seed + 3)),
    }
    paths = {name: out_dir / f"{name}.jsonl" for name in files}
    for name, records in files.items():
        _write_jsonl(paths[name], records)
    rng = random.Random(seed + 4)
    paths["corpus"] = out_dir / "corpus.txt"
    paths["corpus"].write_text("\n\n".join(corpus_paragraph(rng) for _ in range(sizes.corpus)) + "\n",
                               encoding="utf-8")
    return {**paths, **generate_support(support_dir, seed, sizes)}


def quoted_sections() -> set[str]:
    """Every passage a generated answer rests on."""
    return {ref for i in s.INTENTS for c in i.cases if c.grounded for ref in c.source} | {
        ref for refs in s.ORDER_SOURCES.values() for ref in refs}


def generate_support(out_dir: Path = SUPPORT_DATA_DIR, seed: int = 0, sizes: DataSizes = DataSizes(),
                     grounding: Grounding | None = None) -> dict[str, Path]:
    """Write data/support/{train,test}.jsonl, the real-model support set (`grounding`: the app's personas,
    context layer and orders by default)."""
    quoted = quoted_sections() & s.HELDOUT_SECTIONS
    if quoted:
        raise ValueError(f"generated answers would quote the hand-written set's sections {sorted(quoted)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ground = grounding or Grounding.load()
    train = list(_records(lambda rng: support_record(ground, rng), sizes.support_train, seed + 10))
    test = list(_records(lambda rng: support_record(ground, rng, test=True), sizes.support_heldout, seed + 11))
    paths = {"support_train": out_dir / "train.jsonl", "support_heldout": out_dir / "test.jsonl"}
    _write_jsonl(paths["support_train"], train)
    _write_jsonl(paths["support_heldout"], test)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo.datagen", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR, help="output folder (default data/demo)")
    parser.add_argument("--support-out", type=Path, default=SUPPORT_DATA_DIR, help="real-model support set folder")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args(argv)
    for name, path in generate(args.out, args.seed, support_dir=args.support_out).items():
        print(f"{name:>13}: {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
